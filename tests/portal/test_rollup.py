"""The usage roll-up counts each usage entry exactly once, even when the portal dies between committing a batch and
acknowledging it (the entries come back; the cursor committed with the totals skips them)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from atlas_portal import crud
from atlas_portal.rollup import store


def entry(n: int, requests: int = 1) -> tuple[bytes, dict[bytes, bytes]]:
    fields = {b"ts": str(time.time()).encode(), b"user_id": b"1", b"key_id": b"2", b"model": b"m",
              b"status": b"200", b"prompt_tokens": b"3", b"completion_tokens": b"4", b"latency_ms": b"5",
              b"requests": str(requests).encode()}
    return f"{1_700_000_000_000 + n}-0".encode(), fields


def test_a_batch_delivered_again_after_a_crash_is_not_counted_twice(portal: TestClient) -> None:
    factory = portal.app.state.sessions  # type: ignore[attr-defined]
    batch = [entry(1), entry(2), entry(3, requests=0)]  # the third: a task attempt's tokens, no request

    async def rows() -> list[tuple[int, int, int]]:
        async with factory() as session:
            found = await crud.usage(session, user_id=1, since=__import__("datetime").date(2000, 1, 1))
            return [(r.requests, r.prompt_tokens, r.completion_tokens) for r in found]

    assert portal.portal is not None
    portal.portal.call(store, factory, batch, "portal-a")
    portal.portal.call(store, factory, batch, "portal-a")  # re-delivered: the acknowledgement never went out
    portal.portal.call(store, factory, [*batch[1:], entry(4)], "portal-a")  # a later batch overlapping it
    assert portal.portal.call(rows) == [(3, 12, 16)]
