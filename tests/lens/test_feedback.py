"""What the Lens keeps of users' solves: nothing unless the operator turns learning on for them, then bounded
records per solve, per user and in total, which the trainer reads and ``forget`` deletes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from atlas_engine import SolveResult
from atlas_lens import EmbeddingClient, FeedbackRecorder, LensSettings
from atlas_lens.data import from_feedback
from atlas_lens.features import unpack
from atlas_lens.feedback import MAX_RECORD_BYTES, USERS, forget, records, records_key, set_learning
from tests.conftest import RedisServer
from tests.lens.helpers import DIM, TextEmbedder
from tests.lens.test_live import settings

T = TypeVar("T")


def result(codes: list[str], winner: int = 0, total: int = 1) -> SolveResult:
    return SolveResult.model_validate({
        "id": uuid.uuid4().hex, "code": codes[winner], "language": "python", "entry_point": "f", "verified": True,
        "status": "passed", "stopped": "done", "summary": "", "winner": winner, "repair_rounds": 0,
        "candidates": [{"index": i, "origin": "sample", "temperature": 0.6, "seed": i, "tokens": 10,
                        "verdict": "passed" if i == winner else "TestFailure", "public_passed": int(i == winner),
                        "public_total": total, "code": c} for i, c in enumerate(codes)],
        "tests": {"user": 1, "examples": 0, "self_written": 0}, "tokens": {"prompt": 1, "completion": 1},
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        "timings": {"total_s": 1, "llm_s": 1, "sandbox_s": 0, "overhead_s": 0, "llm_calls": 1, "sandbox_calls": 1}})


def run(redis_server: RedisServer, tmp_path: Path, work: Callable[[FeedbackRecorder, Redis], Awaitable[T]],
        **extra: str) -> T:
    async def main() -> T:
        redis = Redis.from_url(redis_server.url, password=redis_server.password)
        try:
            await redis.delete(USERS)
            s: LensSettings = settings(tmp_path, **extra)
            recorder = FeedbackRecorder(redis, cast(EmbeddingClient, TextEmbedder()), s, CollectorRegistry())
            return await work(recorder, redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def count(recorder: FeedbackRecorder, result_: str) -> float:
    return cast(float, recorder.outcomes._metrics[(result_,)]._value.get())  # type: ignore[attr-defined]


def test_nothing_is_kept_unless_learning_is_on_for_the_user(redis_server: RedisServer, tmp_path: Path) -> None:
    async def work(recorder: FeedbackRecorder, redis: Redis) -> list[float]:
        recorder.submit(result(["a", "b"]), "problem", "alice")
        await recorder.drain()
        off = await redis.llen(records_key("alice"))
        recorder.settings = settings(tmp_path, ATLAS_LENS_LEARN="listed")
        recorder.submit(result(["a", "b"]), "problem", "alice")  # not listed
        await recorder.drain()
        unlisted = await redis.llen(records_key("alice"))
        await set_learning(redis, "alice", True)
        recorder.submit(result(["a", "b"]), "problem", "alice")
        await recorder.drain()
        return [off, unlisted, await redis.llen(records_key("alice")), count(recorder, "skipped")]

    assert run(redis_server, tmp_path, work) == [0, 0, 1, 2]


def test_a_record_holds_code_labels_selection_and_embeddings(redis_server: RedisServer, tmp_path: Path) -> None:
    async def work(recorder: FeedbackRecorder, redis: Redis) -> list[tuple[str, dict[str, Any]]]:
        await recorder.record(result(["# right", "# wrong"], winner=0), "Add two numbers.", "bob")
        return [r async for r in records(redis) if r[0] == "bob"]

    (user, record), = run(redis_server, tmp_path, work, ATLAS_LENS_LEARN="all")
    assert record["problem"] == "Add two numbers." and record["features"] == {"source": "embed", "dim": DIM}
    assert unpack(record["problem_embedding"]).shape == (DIM,)
    first, second = record["candidates"]
    assert first["selected"] and not second["selected"]
    assert (first["verdict"], second["verdict"]) == ("passed", "TestFailure")
    assert unpack(first["embedding"]).shape == (DIM,)
    samples = from_feedback(user, record)  # the trainer's view: labelled by the public tests
    assert [s.passed for s in samples] == [True, False] and all(s.label == "public" for s in samples)


def test_records_are_bounded_per_record_per_user_and_in_users(redis_server: RedisServer, tmp_path: Path) -> None:
    async def work(recorder: FeedbackRecorder, redis: Redis) -> dict[str, Any]:
        huge = ["x = 1\n" + "#" * 30_000 + str(i) for i in range(5)]
        await recorder.record(result(huge), "p", "big")
        raw = (await redis.lrange(records_key("big"), 0, 0))[0]
        for n in range(5):
            await recorder.record(result([f"v{n}", "w"]), "p", "carol")
        carol = await redis.llen(records_key("carol"))
        for user in ("u1", "u2", "u3"):
            await recorder.record(result(["a", "b"]), "p", user)
        kept = {u.decode() for u in await redis.zrange(USERS, 0, -1) if isinstance(u, bytes)}
        return {"bytes": len(raw), "candidates": len(json.loads(raw)["candidates"]),
                "carol": carol, "users": kept,
                "big_gone": not await redis.exists(records_key("big")),
                "carol_gone": not await redis.exists(records_key("carol"))}

    out = run(redis_server, tmp_path, work, ATLAS_LENS_LEARN="all", ATLAS_LENS_FEEDBACK_PER_USER="3",
              ATLAS_LENS_FEEDBACK_USERS="3")
    assert out["bytes"] <= MAX_RECORD_BYTES and 0 < out["candidates"] < 5
    assert out["carol"] == 3
    assert out["users"] == {"u1", "u2", "u3"} and out["big_gone"]  # the least recently active went first
    assert out["carol_gone"]


def test_forget_deletes_a_users_records_and_flag(redis_server: RedisServer, tmp_path: Path) -> None:
    async def work(recorder: FeedbackRecorder, redis: Redis) -> list[Any]:
        await set_learning(redis, "dave", True)
        await recorder.record(result(["a", "b"]), "p", "dave")
        deleted = await forget(redis, "dave")
        return [deleted, await redis.exists(records_key("dave")), await redis.sismember("atlas:lens:learn", "dave")]

    assert run(redis_server, tmp_path, work, ATLAS_LENS_LEARN="listed") == [1, 0, 0]


def test_too_many_records_in_flight_are_dropped_not_waited_for(redis_server: RedisServer, tmp_path: Path) -> None:
    async def work(recorder: FeedbackRecorder, redis: Redis) -> float:
        for _ in range(5):
            recorder.submit(result(["a", "b"]), "p", "erin")
        await recorder.drain()
        return count(recorder, "dropped")

    assert run(redis_server, tmp_path, work, ATLAS_LENS_LEARN="all", ATLAS_LENS_FEEDBACK_PENDING="2") == 3
