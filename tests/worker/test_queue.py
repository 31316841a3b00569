"""The queue and the consumer in-process, against the real test Redis, with handlers written for each case."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from atlas_core.errors import Retryable, Unrecoverable
from atlas_core.queue import DEAD, PRIORITIES, RECENT, RECENT_KEPT, QueueFull, TaskQueue, stream_key
from atlas_worker.loop import TaskContext, TaskOutcome
from atlas_worker.worker import Handler, Worker, WorkerConfig
from tests.conftest import RedisServer

T = TypeVar("T")


def run(redis_server: RedisServer, work: Callable[[TaskQueue], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        client = Redis.from_url(redis_server.url, password=redis_server.password)
        try:
            await client.flushdb()
            queue = TaskQueue(client, **options)
            await queue.ensure_groups()
            return await work(queue)
        finally:
            await client.aclose()

    return asyncio.run(main())


async def submit(queue: TaskQueue, n: int = 1, priority: Any = "p1", owner: str = "7", **spec: Any) -> list[str]:
    return [await queue.submit({"n": i, **spec}, owner=owner, priority=priority, deadline_s=60, max_attempts=3)
            for i in range(n)]


@asynccontextmanager
async def serving(queue: TaskQueue, handler: Handler, **config: Any) -> AsyncIterator[Worker]:
    worker = Worker(queue, handler, WorkerConfig(**{"block_ms": 100, "backoff_s": 0.0, **config}))
    loop = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.stop(0.5)
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(15):
        while not await check():  # noqa: ASYNC110 (the state lives in Redis: polling is the only way to see it)
            await asyncio.sleep(0.05)


async def status(queue: TaskQueue, task_id: str) -> str:
    return (await queue.record(task_id) or {}).get("status", "")


async def echo(ctx: TaskContext) -> TaskOutcome:
    return TaskOutcome("succeeded", "SUCCESS", "done", {"echo": ctx.spec}, attempts=1)


def test_priorities_are_read_in_order_and_p2_is_not_starved(redis_server: RedisServer) -> None:
    async def work(queue: TaskQueue) -> list[str]:
        for p in PRIORITIES:
            await submit(queue, 30, priority=p)
        order: list[str] = []
        for _ in range(14):
            order += [d.priority for d in await queue.read("c", 1, 0)]
        return order

    order = run(redis_server, work)
    assert order.count("p0") == 8 and order.count("p1") == 4 and order.count("p2") == 2
    assert order[:2] == ["p0", "p0"]


def test_a_full_queue_refuses_and_writes_nothing(redis_server: RedisServer) -> None:
    async def work(queue: TaskQueue) -> tuple[int, int]:
        await submit(queue, 3)
        with pytest.raises(QueueFull, match=r"full \(3 tasks"):
            await submit(queue, 1, priority="p0")
        return await queue.redis.xlen(stream_key("p0")), len(await queue.redis.keys("atlas:task:*"))

    p0_entries, records = run(redis_server, work, max_queued=3)
    assert p0_entries == 0
    assert records == 6  # three tasks, each a record and an event stream


def test_tasks_complete_once_with_their_events(redis_server: RedisServer) -> None:
    async def work(queue: TaskQueue) -> tuple[list[dict[str, str] | None], list[list[str]], int]:
        ids = await submit(queue, 5, priority="p0") + await submit(queue, 5, priority="p2")
        async with serving(queue, echo, concurrency=4) as worker:
            await until(lambda: all_done(queue, ids))
            served = worker.served
            seen = (await queue.stats(detail=True))["workers"]
            assert [(w["name"], w["alive"], w["concurrency"]) for w in seen] == [(worker.name, True, 4)]
        assert (await queue.stats(detail=True))["workers"] == []  # a worker that stops says so
        records = [await queue.record(t) for t in ids]
        kinds = [[kind for _, kind, _ in await queue.events(t)] for t in ids]
        left = sum([await queue.redis.xlen(stream_key(p)) for p in PRIORITIES])
        return records, kinds, served + left * 1000

    records, kinds, served = run(redis_server, work)
    assert served == 10  # every task served once, and no entry left in the streams
    for record, events in zip(records, kinds, strict=True):
        assert record is not None and record["status"] == "succeeded" and record["stop_reason"] == "SUCCESS"
        assert json.loads(record["result"])["echo"]["n"] in range(5)
        assert events == ["queued", "started", "done"]


async def all_done(queue: TaskQueue, ids: list[str]) -> bool:
    return all([await status(queue, t) in ("succeeded", "failed", "cancelled", "dead") for t in ids])


def test_a_poison_task_is_dead_lettered_and_the_others_are_served(redis_server: RedisServer) -> None:
    calls: dict[str, int] = {}

    async def handler(ctx: TaskContext) -> TaskOutcome:
        calls[ctx.task_id] = calls.get(ctx.task_id, 0) + 1
        if ctx.spec.get("poison"):
            raise ZeroDivisionError("the handler always fails on this one")
        return await echo(ctx)

    async def work(queue: TaskQueue) -> tuple[dict[str, str] | None, list[str], list[Any], list[str]]:
        poison = (await submit(queue, 1, poison=True))[0]
        others = await submit(queue, 4)
        async with serving(queue, handler, max_deliveries=3):
            await until(lambda: all_done(queue, [poison, *others]))
        dead: Any = await queue.redis.xrange(DEAD)
        kinds = [kind for _, kind, _ in await queue.events(poison)]
        return await queue.record(poison), [await status(queue, t) for t in others], dead, kinds

    record, others, dead, kinds = run(redis_server, work)
    assert record is not None and record["status"] == "dead" and record["stop_reason"] == "UNRECOVERABLE"
    assert "ZeroDivisionError" in record["message"] and "3 deliveries" in record["message"]
    assert others == ["succeeded"] * 4
    assert len(dead) == 1 and "ZeroDivisionError" in json.loads(dead[0][1][b"data"])["reason"]
    assert kinds.count("retry") == 2 and kinds[-1] == "done"
    assert max(calls.values()) == 3



class Refused(Retryable, Unrecoverable):
    """Both at once, as the engine's SandboxRefused is (a SandboxUnavailable that no retry can help)."""


def test_a_dependency_down_is_retried_uncounted_and_an_unrecoverable_task_ends(redis_server: RedisServer) -> None:
    calls: dict[str, int] = {}

    async def handler(ctx: TaskContext) -> TaskOutcome:
        calls[ctx.task_id] = calls.get(ctx.task_id, 0) + 1
        if ctx.spec.get("refused"):
            raise Refused("the sandbox refuses this language")
        if calls[ctx.task_id] == 1:
            raise Retryable("the model is down")
        return await echo(ctx)

    async def work(queue: TaskQueue) -> tuple[dict[str, str] | None, dict[str, str] | None]:
        down, refused = (await submit(queue))[0], (await submit(queue, refused=True))[0]
        async with serving(queue, handler, visibility_s=2, max_deliveries=1):
            await until(lambda: all_done(queue, [down, refused]))
        return await queue.record(down), await queue.record(refused)

    down, refused = run(redis_server, work)
    # served on its second run although one delivery is the limit: the outage did not count against the task
    assert down is not None and down["status"] == "succeeded" and (down["deliveries"], down["outages"]) == ("1", "1")
    assert refused is not None and (refused["status"], refused["stop_reason"]) == ("failed", "UNRECOVERABLE")
    assert refused["message"] == "the sandbox refuses this language" and refused["deliveries"] == "1"


def test_result_writes_are_idempotent(redis_server: RedisServer) -> None:
    async def work(queue: TaskQueue) -> tuple[bool, bool, list[str]]:
        task_id = (await submit(queue))[0]
        delivery = (await queue.read("a", 1, 0))[0]
        await queue.begin(delivery, "a")
        first = await queue.finish(delivery, "succeeded", {"stop_reason": "SUCCESS"}, {}, {"succeeded": 1})
        second = await queue.finish(delivery, "failed", {"stop_reason": "MAX_ATTEMPTS"}, {}, {"failed": 1})
        return first, second, [kind for _, kind, _ in await queue.events(task_id)]

    first, second, kinds = run(redis_server, work)
    assert (first, second) == (True, False)
    assert kinds.count("done") == 1


def test_cancel_before_start_and_while_running(redis_server: RedisServer) -> None:
    async def slow(ctx: TaskContext) -> TaskOutcome:
        await asyncio.sleep(60)
        return await echo(ctx)

    async def work(queue: TaskQueue) -> tuple[str, str, dict[str, str] | None, float]:
        queued = (await submit(queue))[0]
        first = await queue.cancel(queued, "7")
        running = (await submit(queue))[0]
        async with serving(queue, slow, visibility_s=3):
            await until(lambda: is_status(queue, running, "running"))
            asked = asyncio.get_running_loop().time()
            second = await queue.cancel(running, "7")
            await until(lambda: is_status(queue, running, "cancelled"))
            took = asyncio.get_running_loop().time() - asked
        return first, second, await queue.record(running), took

    first, second, record, took = run(redis_server, work)
    assert first == "cancelled" and second == "cancelling"
    assert record is not None and record["stop_reason"] == "CANCELLED"
    assert took < 5  # noticed at the next heartbeat (every second), not after the attempt


async def is_status(queue: TaskQueue, task_id: str, wanted: str) -> bool:
    return await status(queue, task_id) == wanted


def test_shutdown_hands_a_running_task_back_and_another_worker_finishes_it(redis_server: RedisServer) -> None:
    started: list[str] = []

    async def slow_once(ctx: TaskContext) -> TaskOutcome:
        started.append(ctx.worker)
        if len(started) == 1:
            await asyncio.sleep(60)
        return await echo(ctx)

    async def work(queue: TaskQueue) -> tuple[dict[str, str] | None, list[str]]:
        task_id = (await submit(queue))[0]
        async with serving(queue, slow_once, visibility_s=2):
            await until(lambda: is_status(queue, task_id, "running"))
        assert await status(queue, task_id) == "queued"
        async with serving(queue, slow_once, visibility_s=2):
            await until(lambda: is_status(queue, task_id, "succeeded"))
        return await queue.record(task_id), [kind for _, kind, _ in await queue.events(task_id)]

    record, kinds = run(redis_server, work)
    assert record is not None and record["deliveries"] == "1"  # the handed-back delivery does not count
    assert kinds == ["queued", "started", "handed_back", "started", "done"]
    assert len(set(started)) == 2


def test_entries_with_the_same_id_in_two_streams_are_both_served(redis_server: RedisServer) -> None:
    """Stream ids are unique per stream only: p0 and p2 can both hold 1795...-0 (same millisecond)."""

    async def work(queue: TaskQueue) -> list[str]:
        ids = [(await submit(queue, priority=p))[0] for p in ("p0", "p2")]
        for p, task_id in zip(("p0", "p2"), ids, strict=True):
            await queue.redis.delete(stream_key(p))
            await queue.redis.xadd(stream_key(p), {"id": task_id}, id="9999999999999-0")
        await queue.ensure_groups()
        async with serving(queue, echo, concurrency=4):
            await until(lambda: all_done(queue, ids))
        return [await status(queue, t) for t in ids]

    assert run(redis_server, work) == ["succeeded", "succeeded"]


def test_a_retry_or_hand_back_from_a_worker_that_does_not_run_the_task_changes_nothing(
        redis_server: RedisServer) -> None:
    """Redis failing before BEGIN, or a worker that lost its task to another: the entry stays for reclaim and
    the other worker's run is untouched (nothing is stranded, nothing overwritten)."""

    async def work(queue: TaskQueue) -> tuple[bool, bool, bool, str, list[str]]:
        task_id = (await submit(queue))[0]
        delivery = (await queue.read("a", 1, 0))[0]
        before_begin = await queue.retry(delivery, "a", 0.0, {}, counted=False, error="Redis was unavailable")
        taken = (await queue.reclaim("b", 0, 1))[0]  # b takes the still-pending entry over and runs it
        await queue.begin(taken, "b")
        late_retry = await queue.retry(delivery, "a", 0.0, {}, counted=True, error="boom")
        late_hand_back = await queue.hand_back(delivery, "a")
        record = await queue.record(task_id) or {}
        return before_begin, late_retry, late_hand_back, record["status"] + "/" + record["worker"], [
            kind for _, kind, _ in await queue.events(task_id)]

    before_begin, late_retry, late_hand_back, state, kinds = run(redis_server, work)
    assert (before_begin, late_retry, late_hand_back) == (False, False, False)
    assert state == "running/b" and "retry" not in kinds and "handed_back" not in kinds


def test_a_resumed_task_whose_last_attempt_passed_succeeds_without_new_work() -> None:
    from atlas_engine import Engine, EngineConfig
    from atlas_worker.loop import VerifyRepair, schedule

    attempt = {"kind": "attempt", "n": 2, "verified": True, "stopped": "done", "summary": "passed all 1",
               "code": "def add(a, b):\n    return a + b\n", "failing": [],
               "tokens": {"prompt": 10, "completion": 5}}

    async def emit(kind: str, data: dict[str, Any]) -> None:
        raise AssertionError("nothing new should happen")

    ctx = TaskContext(task_id="t", spec={"prompt": "Write add(a, b).", "tests": [{"assert": "assert add(1, 2) == 3"}]},
                      record={}, history=[attempt, attempt], worker="w", emit=emit, record_attempt=emit,  # type: ignore[arg-type]
                      max_attempts=2)
    outcome = asyncio.run(VerifyRepair(Engine(None, None, EngineConfig()))(ctx))  # type: ignore[arg-type]
    assert (outcome.stop_reason, outcome.attempts, outcome.tokens) == ("SUCCESS", 1, {"prompt": 10, "completion": 5})
    assert outcome.result is not None and outcome.result["verified"] is True
    assert all(0 <= schedule(5, 2**31 - 2, n)[2] < 2**31 - 1 for n in range(1, 21))  # seeds stay in range


def test_everyones_newest_tasks_are_indexed_and_the_index_is_bounded(redis_server: RedisServer) -> None:
    async def work(queue: TaskQueue) -> tuple[list[str], list[str], int]:
        first = await submit(queue, 3, owner="7")
        more = await submit(queue, RECENT_KEPT, owner="8")
        newest = [str(x, "utf-8") for x in await queue.redis.zrevrange(RECENT, 0, 2)]  # type: ignore[arg-type]
        return first + more, newest, await queue.redis.zcard(RECENT)

    ids, newest, kept = run(redis_server, work, max_queued=1000)
    assert newest == ids[::-1][:3] and kept == RECENT_KEPT
