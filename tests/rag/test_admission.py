"""rag-api's admission slots (``atlas_rag.solver.Admission``, ``atlas_core/lua/rag_admission.lua``) on the real
test Redis: two Solvers on their own clients, as two replicas are, share one limit; a slot that a dead replica
left past its expiry is taken back; a Redis that lost its scripts, or is down, is handled (a 503 with the
reason, at once)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from atlas_core.settings import load_settings
from atlas_engine import Budget, LLMUnavailable, SolveRequest, Telemetry, build_engine
from atlas_lens import build_lens
from atlas_rag.app import create_app
from atlas_rag.settings import Settings
from atlas_rag.solver import SLOT_GRACE_S, SLOTS_KEY, Admission, Solver, SolverBusy
from tests.conftest import PROXY_TOKEN, RedisServer, ServerThread, free_port
from tests.rag.fake_llm import fake

T = TypeVar("T")
ADD = "Write a Python function add(a, b) that returns the sum.\n>>> add(2, 3)\n5\n"
REQUEST = SolveRequest(problem=ADD, budget=Budget(k=1, self_tests=False, repair_rounds=0, deadline_s=60))


class GoneAdmission(Admission):
    """Redis went away after the slot was taken: giving it back fails."""

    async def give(self, solve_id: str) -> None:
        raise RedisConnectionError("Connection refused")


@asynccontextmanager
async def replicas(env: dict[str, str], redis_server: RedisServer, limit: int, n: int = 2,
                   admission: type[Admission] = Admission) -> AsyncIterator[list[Solver]]:
    """``n`` Solvers as ``n`` rag-api replicas build theirs, each on its own Redis client."""
    settings = load_settings(Settings, environ=env)
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        solvers = []
        for _ in range(n):
            client = Redis.from_url(redis_server.url, password=redis_server.password)
            stack.push_async_callback(client.aclose)
            registry = CollectorRegistry()
            feedback = build_lens(http, client, settings, registry).feedback
            solvers.append(Solver(build_engine(http, settings, "rag-api"), Telemetry(client, registry),
                                  admission(client, limit, registry), feedback))
        yield solvers


def run(work: Awaitable[T]) -> T:
    async def main() -> T:
        return await work

    return asyncio.run(main())


def test_two_replicas_share_one_limit_and_a_finished_solve_gives_its_slot_back(
        service_env: dict[str, str], redis_server: RedisServer, llm: ServerThread) -> None:
    fake(llm).down = True  # each solve ends at once (the model is unavailable): its slot must come back anyway
    env = service_env | {"ATLAS_LLAMA_URL": llm.url}

    async def work() -> None:
        async with replicas(env, redis_server, limit=3) as (one, two):
            first, second, third = [await s.start(REQUEST) for s in (one, two, one)]
            for solver in (one, two):
                with pytest.raises(SolverBusy):
                    await solver.start(REQUEST)
                assert await solver.running() == 3
            results = {r: one.admission.results.labels(r)._value.get() for r in ("admitted", "busy")}
            assert results == {"admitted": 2, "busy": 1}  # the counter moves with each answer
            with pytest.raises(LLMUnavailable):
                await two.run(second, None, "7")
            assert await one.running() == 2
            await one.start(REQUEST)  # the slot replica two gave back, taken by replica one
            with pytest.raises(SolverBusy):
                await two.start(REQUEST)
            for solve in (first, third):
                with pytest.raises(LLMUnavailable):
                    await one.run(solve, None, "7")
            assert await two.running() == 1

    run(work())


def test_a_burst_on_both_replicas_admits_exactly_the_limit(service_env: dict[str, str],
                                                           redis_server: RedisServer) -> None:
    async def work() -> list[bool]:
        async with replicas(service_env, redis_server, limit=5) as (one, two):
            async def take(solver: Solver, i: int) -> bool:
                return await solver.admission.take(f"solve-{i}", 60)

            return await asyncio.gather(*(take(one if i % 2 else two, i) for i in range(40)))

    assert sum(run(work())) == 5
    with redis_server.client() as client:
        assert client.zcard(SLOTS_KEY) == 5
        assert 0 < client.pttl(SLOTS_KEY) <= 60_000  # the set goes with its longest slot


def test_slots_a_dead_replica_left_expire_and_are_taken_again(service_env: dict[str, str],
                                                              redis_server: RedisServer) -> None:
    with redis_server.client() as client:
        seconds, micros = client.time()
        now_ms = seconds * 1000 + micros // 1000
        # A replica killed mid-solve: its two slots stay, one of them already past its solve's deadline + grace.
        client.zadd(SLOTS_KEY, {"dead-expired": now_ms - 1, "dead-live": now_ms + 60_000})

    async def work() -> tuple[int, bool, bool]:
        async with replicas(service_env, redis_server, limit=2, n=1) as (one,):
            running = await one.running()
            return running, await one.admission.take("new", 60), await one.admission.take("more", 60)

    assert run(work()) == (1, True, False)
    with redis_server.client() as client:
        assert {m.decode() for m in client.zrange(SLOTS_KEY, 0, -1)} == {"dead-live", "new"}


def test_a_slot_expires_at_its_solves_deadline_plus_the_grace(service_env: dict[str, str],
                                                              redis_server: RedisServer) -> None:
    async def work() -> str:
        async with replicas(service_env, redis_server, limit=1, n=1) as (one,):
            return (await one.start(REQUEST)).id

    solve_id = run(work())
    with redis_server.client() as client:
        seconds, micros = client.time()
        left_ms = float(client.zscore(SLOTS_KEY, solve_id) or 0) - (seconds * 1000 + micros // 1000)
    assert (60 + SLOT_GRACE_S) * 1000 - 5_000 < left_ms <= (60 + SLOT_GRACE_S) * 1000


def test_a_redis_that_lost_its_scripts_still_admits(service_env: dict[str, str], redis_server: RedisServer) -> None:
    async def work() -> tuple[bool, int]:
        async with replicas(service_env, redis_server, limit=2, n=1) as (one,):
            assert await one.admission.take("before", 60)
            await one.admission._redis.script_flush()  # what a Redis restart does to them
            return await one.admission.take("after", 60), await one.running()

    assert run(work()) == (True, 2)


def test_a_slot_that_cannot_be_given_back_does_not_hide_the_solves_outcome(
        service_env: dict[str, str], redis_server: RedisServer, llm: ServerThread,
        caplog: pytest.LogCaptureFixture) -> None:
    fake(llm).down = True
    env = service_env | {"ATLAS_LLAMA_URL": llm.url}

    async def work() -> None:
        async with replicas(env, redis_server, limit=1, n=1, admission=GoneAdmission) as (one,):
            solve = await one.start(REQUEST)
            with caplog.at_level(logging.WARNING, "atlas.rag"), pytest.raises(LLMUnavailable):
                await one.run(solve, None, "7")

    run(work())
    assert "it frees itself at its expiry" in caplog.text


def test_redis_down_refuses_solves_at_once_with_the_reason(service_env: dict[str, str]) -> None:
    env = service_env | {"ATLAS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    auth = {"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": "7"}
    chat = {"model": "atlas", "messages": [{"role": "user", "content": ADD}]}
    with ServerThread(create_app(load_settings(Settings, environ=env))) as server, \
            httpx.Client(base_url=server.url, timeout=15) as client:
        for path, body in (("/v1/solve", {"problem": ADD}), ("/v1/solve", {"problem": ADD, "stream": True}),
                           ("/v1/chat/completions", chat)):
            started = time.monotonic()
            response = client.post(path, json=body, headers=auth)
            assert response.status_code == 503, (path, response.text)
            assert "Redis" in response.json()["error"]["message"] and response.headers["retry-after"]
            assert time.monotonic() - started < 10, "a Redis that is down must not hold the request"

