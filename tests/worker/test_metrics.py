"""The task-worker's /metrics with real traffic: rag-api and a task-worker app on sockets, the real sandbox, the
scripted model server; tasks submitted through rag-api (or, for one that cannot run, straight into the queue).
Each metric is read before and after, and must have moved by exactly what happened."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from atlas_core.app import open_clients, service_app
from atlas_core.queue import DEAD, WORKERS, TaskQueue
from atlas_core.settings import load_settings
from atlas_engine.telemetry import SOLVES_STREAM
from atlas_rag.app import create_app as rag_app
from atlas_rag.settings import Settings as RagSettings
from atlas_worker.app import create_app as worker_app
from atlas_worker.metrics import QueueMetrics
from atlas_worker.settings import Settings as WorkerSettings
from tests.conftest import METRICS_TOKEN, PROXY_TOKEN, RedisServer, ServerThread, free_port
from tests.rag.fake_llm import fake, fenced
from tests.rag.scrape import Metrics, scrape

ADD = fenced("def add(a, b):\n    return a + b")
PROMPT = "Write a function add(a, b) that returns the sum of a and b."
TASK = {"prompt": PROMPT, "entry_point": "add",
        "tests": [{"assert": "assert add(1, 2) == 3"}, {"args": [5, 7], "expected": 12}],
        "budget": {"k": 1, "self_tests": False, "repair_rounds": 0}}
STATUSES = ("succeeded", "failed", "cancelled", "dead")


@dataclass
class Stack:
    rag: str
    worker: str
    llm: Any
    redis: RedisServer

    def submit(self, owner: str = "7", **extra: Any) -> str:
        response = httpx.post(f"{self.rag}/v1/tasks", json=TASK | extra, timeout=30,
                              headers={"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": owner})
        assert response.status_code == 202, response.text
        return str(response.json()["task_id"])

    def task(self, task_id: str, owner: str = "7") -> dict[str, Any]:
        response = httpx.get(f"{self.rag}/v1/tasks/{task_id}", timeout=30,
                             headers={"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": owner})
        body: dict[str, Any] = response.json()
        return body

    def finished(self, task_id: str, owner: str = "7") -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while not (task := self.task(task_id, owner))["finished_at"]:
            assert time.monotonic() < deadline, task
            time.sleep(0.1)
        return task

    def metrics(self) -> Metrics:
        return scrape(self.worker)

    def solves(self) -> list[dict[str, str]]:
        with self.redis.client() as client:
            return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in client.xrange(SOLVES_STREAM)]


@pytest.fixture
def stack(service_env: dict[str, str], redis_server: RedisServer, llm: ServerThread, sandbox_url: str
          ) -> Iterator[Stack]:
    env = service_env | {"ATLAS_LLAMA_URL": llm.url, "ATLAS_SANDBOX_URL": sandbox_url,
                         "ATLAS_WORKER_VISIBILITY_S": "2", "ATLAS_WORKER_RETRY_BACKOFF_S": "0.1",
                         "ATLAS_WORKER_MAX_DELIVERIES": "2", "ATLAS_WORKER_SHUTDOWN_GRACE_S": "0.2"}
    fake(llm).script = lambda body: ADD
    with ServerThread(rag_app(load_settings(RagSettings, environ=env))) as rag, \
            ServerThread(worker_app(load_settings(WorkerSettings, environ=env))) as worker:
        yield Stack(rag.url, worker.url, fake(llm), redis_server)


def moved(after: Metrics, before: Metrics, name: str, **labels: str) -> float:
    return after.delta(before, name, **labels)


def test_a_task_that_succeeds_is_counted_timed_and_its_solve_recorded_as_a_task(stack: Stack) -> None:
    before = stack.metrics()
    task_id = stack.submit()
    task = stack.finished(task_id)
    after = stack.metrics()
    assert task["status"] == "succeeded"
    for status in STATUSES:
        assert moved(after, before, "atlas_queue_tasks_total", status=status) == (status == "succeeded")
    assert moved(after, before, "atlas_queue_retries_total") == 0
    assert moved(after, before, "atlas_queue_dead_lettered_total") == 0
    assert moved(after, before, "atlas_queue_wait_seconds_count") == 1
    assert moved(after, before, "atlas_queue_wait_seconds_sum") == pytest.approx(
        task["started_at"] - task["submitted_at"], abs=1e-3)
    assert moved(after, before, "atlas_queue_run_seconds_count", status="succeeded") == 1
    assert moved(after, before, "atlas_queue_run_seconds_sum", status="succeeded") == pytest.approx(
        task["finished_at"] - task["started_at"], abs=0.1)
    # the attempt's solve, in the worker's registry and on the solves stream, as a task's
    assert moved(after, before, "atlas_solves_total", status="passed", stopped="done", verified="true") == 1
    assert moved(after, before, "atlas_solve_k_count") == 1 and moved(after, before, "atlas_solve_k_sum") == 1
    assert moved(after, before, "atlas_solve_tokens_per_solve_sum") == task["prompt_tokens"] + task[
        "completion_tokens"]
    [entry] = stack.solves()
    assert (entry["source"], entry["task_id"], entry["user_id"], entry["status"]) == ("task", task_id, "7", "passed")
    assert int(entry["sandbox_calls"]) >= 1
    assert moved(after, before, "atlas_solve_sandbox_calls_total") == int(entry["sandbox_calls"])
    assert PROMPT not in json.dumps(entry)  # a hash of the prompt, never the prompt
    # the queue as it is now: empty, one worker alive and beating
    assert [after.value("atlas_queue_depth", priority=p) for p in ("p0", "p1", "p2")] == [0, 0, 0]
    assert after.value("atlas_queue_in_flight") == 0 and after.value("atlas_queue_workers") == 1
    assert 0 <= after.value("atlas_queue_heartbeat_age_seconds") < 5


def test_every_attempt_of_a_task_is_a_solve_on_the_stream(stack: Stack) -> None:
    stack.llm.script = lambda body: "no code here"  # every attempt fails: three solves, one task
    before = stack.metrics()
    task_id = stack.submit(owner="8", max_attempts=3)
    task = stack.finished(task_id, owner="8")
    after = stack.metrics()
    assert (task["status"], task["stop_reason"], task["attempts_made"]) == ("failed", "MAX_ATTEMPTS", 3)
    assert moved(after, before, "atlas_queue_tasks_total", status="failed") == 1
    assert moved(after, before, "atlas_queue_run_seconds_count", status="failed") == 1
    assert moved(after, before, "atlas_solves_total", status="no_code", stopped="done", verified="false") == 3
    assert moved(after, before, "atlas_solve_k_sum") == 1 + 2 + 3  # k escalates: k x attempt
    entries = stack.solves()
    assert [(e["source"], e["task_id"], e["user_id"], e["k"]) for e in entries] == [
        ("task", task_id, "8", str(n)) for n in (1, 2, 3)]


def test_a_failed_delivery_is_retried_and_counted_once(stack: Stack) -> None:
    calls: list[int] = []

    def fail_once(body: dict[str, Any]) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the model server fails this one request")  # a 500: the model is unavailable
        return ADD

    stack.llm.script = fail_once
    before = stack.metrics()
    task = stack.finished(stack.submit())
    after = stack.metrics()
    assert task["status"] == "succeeded" and task["deliveries"] == 1  # a dependency's failure does not count
    assert moved(after, before, "atlas_queue_retries_total") == 1
    assert moved(after, before, "atlas_queue_tasks_total", status="succeeded") == 1
    assert moved(after, before, "atlas_queue_wait_seconds_count") == 1  # the first start only, not the retry's
    assert moved(after, before, "atlas_queue_dead_lettered_total") == 0
    # the attempt that failed never finished its solve: only the one that did is recorded
    assert moved(after, before, "atlas_solves_total", status="passed", stopped="done", verified="true") == 1
    assert len(stack.solves()) == 1


def test_a_task_that_keeps_failing_is_retried_then_dead_lettered(stack: Stack) -> None:
    async def submit_broken() -> str:  # rag-api refuses such a spec: only a bug (or an old record) leaves one
        client = Redis.from_url(stack.redis.url, password=stack.redis.password)
        try:
            return await TaskQueue(client).submit({"not": "a task"}, owner="7", priority="p0", deadline_s=60,
                                                  max_attempts=1)
        finally:
            await client.aclose()

    before = stack.metrics()
    task_id = asyncio.run(submit_broken())
    task = stack.finished(task_id)
    after = stack.metrics()
    assert (task["status"], task["deliveries"]) == ("dead", 2)  # ATLAS_WORKER_MAX_DELIVERIES=2
    assert moved(after, before, "atlas_queue_retries_total") == 1
    assert moved(after, before, "atlas_queue_dead_lettered_total") == 1
    for status in STATUSES:
        assert moved(after, before, "atlas_queue_tasks_total", status=status) == (status == "dead")
    assert moved(after, before, "atlas_queue_run_seconds_count", status="dead") == 1
    assert moved(after, before, "atlas_queue_wait_seconds_count") == 1
    assert after.value("atlas_queue_dead_letters") == 1 and after.value("atlas_queue_delayed") == 0
    assert stack.solves() == []


def test_a_task_cancelled_while_it_runs_is_counted_cancelled(stack: Stack) -> None:
    stack.llm.script = lambda body: (ADD, 30.0)
    before = stack.metrics()
    task_id = stack.submit()
    deadline = time.monotonic() + 30
    while stack.task(task_id)["status"] != "running" or not stack.llm.requests:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    running = stack.metrics()
    assert running.value("atlas_queue_in_flight") == 1
    httpx.delete(f"{stack.rag}/v1/tasks/{task_id}", timeout=30,
                 headers={"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": "7"})
    task = stack.finished(task_id)
    after = stack.metrics()
    assert task["status"] == "cancelled"
    for status in STATUSES:
        assert moved(after, before, "atlas_queue_tasks_total", status=status) == (status == "cancelled")
    assert moved(after, before, "atlas_queue_run_seconds_count", status="cancelled") == 1
    assert stack.solves() == []  # the solve was stopped: nothing finished to record


# -- the gauges, read from Redis at scrape time (no worker consuming) -------------------------------------------


def gauges_app(env: dict[str, str]) -> FastAPI:
    """What the task-worker's app exports for the queue, without its consumer: nothing takes the tasks."""
    settings = load_settings(WorkerSettings, environ=env)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await open_clients(app, settings, stack)
            queue_metrics = QueueMetrics(app.state.metrics.registry)
            app.state.metrics.refreshers.append(queue_metrics.refresher(TaskQueue(app.state.redis)))
            yield

    return service_app("task-worker", settings.metrics_token, lifespan, max_body_bytes=1024)


def in_queue(redis_server: RedisServer, work: Callable[[TaskQueue], Any]) -> Any:
    async def main() -> Any:
        client = Redis.from_url(redis_server.url, password=redis_server.password)
        try:
            queue = TaskQueue(client)
            await queue.ensure_groups()
            return await work(queue)
        finally:
            await client.aclose()

    return asyncio.run(main())


def read(client: TestClient) -> Metrics:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    return Metrics(response.text)


def depths(m: Metrics) -> list[float]:
    return [m.value("atlas_queue_depth", priority=p) for p in ("p0", "p1", "p2")]


def test_the_queue_gauges_read_redis_at_each_scrape(service_env: dict[str, str], redis_server: RedisServer) -> None:
    async def submit(queue: TaskQueue, priority: Any, n: int) -> None:
        for i in range(n):
            await queue.submit({"n": i}, owner="7", priority=priority, deadline_s=60, max_attempts=3)

    with TestClient(gauges_app(service_env)) as client:
        empty = read(client)
        assert depths(empty) == [0, 0, 0] and empty.value("atlas_queue_in_flight") == 0
        assert empty.value("atlas_queue_workers") == 0 and empty.value("atlas_queue_heartbeat_age_seconds") == 0

        in_queue(redis_server, lambda q: submit(q, "p2", 3))
        assert depths(read(client)) == [0, 0, 3]
        in_queue(redis_server, lambda q: submit(q, "p0", 1))
        assert depths(read(client)) == [1, 0, 3]

        async def take_one(queue: TaskQueue) -> None:  # a consumer takes the p0 task and starts it
            [delivery] = await queue.read("c", 1, 0)
            await queue.begin(delivery, "c")
        in_queue(redis_server, take_one)
        m = read(client)
        assert depths(m) == [0, 0, 3] and m.value("atlas_queue_in_flight") == 1

        async def back_off(queue: TaskQueue) -> None:  # ... and sends it back to wait out a backoff
            [delivery] = await queue.reclaim("c", 0, 1)
            assert await queue.retry(delivery, "c", 600.0, {}, counted=True, error="boom")
        in_queue(redis_server, back_off)
        m = read(client)
        assert m.value("atlas_queue_in_flight") == 0 and m.value("atlas_queue_delayed") == 1
        assert depths(m) == [0, 0, 3]

        async def workers_and_dead(queue: TaskQueue) -> None:
            await queue.announce("alive", {"running": 0})
            await queue.redis.hset(WORKERS, "silent", json.dumps({"seen": time.time() - 30, "running": 1}))
            await queue.redis.xadd(DEAD, {"data": "{}"})
        in_queue(redis_server, workers_and_dead)
        m = read(client)
        assert m.value("atlas_queue_workers") == 1  # the silent one is listed, not alive
        assert 29.5 <= m.value("atlas_queue_heartbeat_age_seconds") <= 32
        assert m.value("atlas_queue_dead_letters") == 1


def test_a_scrape_still_answers_when_redis_is_down(service_env: dict[str, str]) -> None:
    env = service_env | {"ATLAS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with TestClient(gauges_app(env)) as client:
        started = time.monotonic()
        m = read(client)
        assert time.monotonic() - started < 5
    assert depths(m) == [0, 0, 0] and m.has("atlas_queue_in_flight")
