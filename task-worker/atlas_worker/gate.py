"""A task's tokens per minute: each attempt reserves its token ceiling against the task's key and owner in the
limiter the proxy uses (``atlas_core.ratelimit``) before it runs, waits while they have no room, and settles what
it really spent, so a user's tasks and requests share one allowance and the worker never outruns it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from atlas_core.ratelimit import OVER_WHOLE_LIMIT, Limiter, Owner

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
MAX_WAIT_STEP_S = 30.0


class TooBig(Exception):
    """One attempt may spend more than the whole limit: it can never be admitted."""


class NoRoomBeforeDeadline(Exception):
    """The limit had no room for the attempt before the task's deadline."""


class TokenGate:
    def __init__(self, limiter: Limiter, owner: Owner, emit: Emit) -> None:
        self._limiter = limiter
        self._owner = owner
        self._emit = emit

    @property
    def limit(self) -> int:
        """The tightest tokens per minute over the attempt (0: none)."""
        limits = [x for x in (self._owner.key_tpm, self._owner.user_tpm) if x]
        return min(limits) if limits else 0

    async def acquire(self, ceiling: int, deadline_at: float) -> str:
        """Reserve ``ceiling`` tokens, waiting for room (the reservation id)."""
        reservation = uuid.uuid4().hex
        announced = False
        while True:
            decision = await self._limiter.admit(self._owner, reservation, ceiling, mode="tokens")
            if decision.admitted:
                return reservation
            if decision.reason == OVER_WHOLE_LIMIT:
                raise TooBig(f"one attempt may spend {ceiling} tokens, more than the {decision.scope}'s "
                             f"{self.limit} tokens per minute")
            wait = min(MAX_WAIT_STEP_S, decision.retry_after_ms / 1000)
            if time.time() + wait > deadline_at:
                raise NoRoomBeforeDeadline(f"the {decision.scope}'s tokens per minute had no room before the deadline")
            if not announced:
                await self._emit("waiting", {"message": f"waiting {wait:.0f}s for the {decision.scope}'s tokens "
                                             "per minute (its requests and tasks share them)"})
                announced = True
            await asyncio.sleep(wait)

    async def settle(self, reservation: str, reserved: int, spent: int) -> None:
        await self._limiter.settle(self._owner, reservation, reserved, spent)


def gate_for(limiter: Limiter | None, record: dict[str, str], emit: Emit) -> TokenGate | None:
    """The gate of a task from its record (its key, owner and the limits the proxy sent), or None when it has
    no limits to respect (a task from before limits were recorded, or an unlimited owner)."""
    if limiter is None or not record.get("key_id"):
        return None
    try:
        limits = json.loads(record.get("limits") or "{}")
        key_tpm, user_tpm = int(limits.get("key_tokens_per_min", 0)), int(limits.get("user_tokens_per_min", 0))
    except (ValueError, TypeError, AttributeError):
        return None
    if not key_tpm and not user_tpm:
        return None
    owner = Owner(user_id=record.get("owner", ""), key_id=record["key_id"], user_tpm=user_tpm, key_tpm=key_tpm)
    return TokenGate(limiter, owner, emit)
