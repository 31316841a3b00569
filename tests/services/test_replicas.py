"""Replicas on one Redis behave as one service: two rag-api processes, two task-worker processes and two llm-proxy
processes keep every guarantee one of each keeps.

- admission: ATLAS_RAG_MAX_CONCURRENT is the total of both rag-api replicas (atlas_rag.solver.Admission), the
  excess gets 503 with Retry-After on either, and every slot comes back;
- rate limits: one key's requests per minute hold across both proxies (they are in Redis: atlas_core.ratelimit);
- task ownership: a task is its owner's through either rag-api, and 404 to anyone else on both;
- exactly-once results with two workers busy at once (tests/worker/test_queue.py proves it for one worker,
  tests/worker/test_failures.py for a task one worker hands to another after a kill or a SIGTERM).

The model server here answers only when the test opens its gate, so solves overlap for as long as the test needs
without timed delays."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from atlas_rag.solver import SLOTS_KEY
from tests.conftest import LLAMA_KEY, METRICS_TOKEN, PROXY_TOKEN, SANDBOX_SIGNING, RedisServer, ServerThread, free_port
from tests.proxy import conftest as proxy_conftest
from tests.proxy.conftest import Stack
from tests.rag.fake_llm import fenced

stack = proxy_conftest.stack  # the proxy tests' portal, proxy and fake backends (module-scoped)
LIMIT = 3  # ATLAS_RAG_MAX_CONCURRENT: both rag-api replicas together
ADD = "Write a Python function add(a, b) that returns the sum.\n>>> add(2, 3)\n5\n"
SOLVE = {"problem": ADD, "budget": {"k": 1, "self_tests": False, "repair_rounds": 0}}
TASK = {"prompt": "Write a function add(a, b) that returns the sum of a and b.", "entry_point": "add",
        "tests": [{"assert": "assert add(1, 2) == 3"}], "budget": {"k": 1, "self_tests": False, "repair_rounds": 0}}


def until(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
    return value


def gated_llama() -> FastAPI:
    """llama-server answering every generation with a right ``add`` once ``state.gate`` is set; ``state.peak`` is
    the most generations it ever had in flight at once."""
    app = FastAPI()
    app.state.gate, app.state.lock = threading.Event(), threading.Lock()
    app.state.in_flight = app.state.peak = 0
    answer = fenced("def add(a, b):\n    return a + b")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    @app.post("/v1/completions")
    async def generate() -> dict[str, Any]:
        with app.state.lock:
            app.state.in_flight += 1
            app.state.peak = max(app.state.peak, app.state.in_flight)
        try:
            while not app.state.gate.is_set():  # noqa: ASYNC110 (the test's thread opens it)
                await asyncio.sleep(0.01)
        finally:
            with app.state.lock:
                app.state.in_flight -= 1
        choice = {"index": 0, "text": answer, "message": {"role": "assistant", "content": answer},
                  "finish_reason": "stop"}
        return {"id": "cmpl-gated", "object": "chat.completion", "created": int(time.time()), "model": "fake",
                "choices": [choice], "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}

    return app


@dataclass
class Process:
    url: str
    proc: subprocess.Popen[bytes]


@contextmanager
def service(package: str, env: dict[str, str], port_key: str, logs: Path) -> Iterator[Process]:
    """``python -m package`` on a free port, once its /livez answers; its output kept in ``logs`` for a failing
    test's reader."""
    port = free_port()
    log = logs / f"{package}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", package], env=env | {port_key: str(port)}, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def live() -> bool:
        try:
            return httpx.get(f"{url}/livez", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        until(lambda: proc.poll() is not None or live())
        assert proc.poll() is None, log.read_text()[-3000:]
        yield Process(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_two_proxies_enforce_one_keys_requests_per_minute_together(stack: Stack, tmp_path: Path) -> None:
    key = stack.key(rate_limit=4)["key"]
    env = stack.env | {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ATLAS_LOG_LEVEL": "WARNING"}
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
    with service("atlas_proxy", env, "ATLAS_PROXY_PORT", tmp_path) as second:
        answers = [httpx.post(f"{(stack.proxy, second.url)[i % 2]}/v1/chat/completions", json=body,
                              headers={"Authorization": f"Bearer {key}"}, timeout=30) for i in range(6)]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429, 429]
    for refused in answers[4:]:
        assert "requests per minute" in refused.json()["error"]["message"] and int(refused.headers["retry-after"])


@dataclass
class Replicas:
    rags: list[str]
    llama: FastAPI
    env: dict[str, str]
    redis: RedisServer
    logs: Path

    def call(self, rag: int, method: str, path: str, owner: str = "1", **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": owner}
        return httpx.request(method, f"{self.rags[rag]}{path}", headers=headers, **{"timeout": 60, **kwargs})

    def slots(self) -> int:
        with self.redis.client() as client:
            return int(client.zcard(SLOTS_KEY))


@pytest.fixture(scope="module")
def replicas(redis_server: RedisServer, sandbox_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Replicas]:
    with redis_server.client() as client:
        client.flushdb()
    home = tmp_path_factory.mktemp("replicas")
    llama = gated_llama()
    with ExitStack() as stack_, ServerThread(llama) as llama_server:
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "ATLAS_METRICS_TOKEN": METRICS_TOKEN,
               "ATLAS_PROXY_TOKEN": PROXY_TOKEN, "ATLAS_LLAMA_API_KEY": LLAMA_KEY,
               "ATLAS_SANDBOX_SIGNING_KEY": SANDBOX_SIGNING, "ATLAS_REDIS_URL": redis_server.url,
               "ATLAS_REDIS_PASSWORD": redis_server.password, "ATLAS_STATE_DIR": str(home / "state"),
               "ATLAS_LLAMA_URL": llama_server.url, "ATLAS_SANDBOX_URL": sandbox_url,
               "ATLAS_EMBED_URL": f"http://127.0.0.1:{free_port()}", "ATLAS_LOG_LEVEL": "WARNING",
               # Every admitted solve reaches the model at once: its peak in flight is then the solves running.
               "ATLAS_RAG_MAX_CONCURRENT": str(LIMIT), "ATLAS_RAG_LLM_PARALLEL": "8"}
        rags = [stack_.enter_context(service("atlas_rag", env, "ATLAS_RAG_PORT", home)).url for _ in range(2)]
        yield Replicas(rags, llama, env, redis_server, home)


def solve(replicas: Replicas, rag: int, timeout: float = 60) -> httpx.Response:
    return replicas.call(rag, "POST", "/v1/solve", json=SOLVE, timeout=timeout)


def refused(replicas: Replicas, rag: int) -> httpx.Response:
    """A solve that must be refused at once (admitted, it would wait on the closed gate and time out here)."""
    answer = solve(replicas, rag, timeout=10)
    assert answer.status_code == 503 and answer.headers["retry-after"], answer.text
    assert "too many solves" in answer.json()["error"]["message"]
    return answer


def test_the_limit_is_both_replicas_total_and_the_excess_gets_503_on_either(replicas: Replicas) -> None:
    gate = replicas.llama.state.gate
    gate.clear()
    with ThreadPoolExecutor(16) as pool, ExitStack() as opened:
        opened.callback(gate.set)  # whatever fails, nothing is left waiting on the gate
        # One at a time, alternating, until the limit: each replica holds slots the other counts.
        held: list[Future[httpx.Response]] = []
        for rag in (0, 1, 0):
            held.append(pool.submit(solve, replicas, rag))
            until(lambda: replicas.slots() == len(held))
        until(lambda: replicas.llama.state.in_flight == LIMIT)  # all three generating, on both replicas
        for rag in (0, 1):
            refused(replicas, rag)
        gate.set()
        assert all(f.result().status_code == 200 and f.result().json()["verified"] for f in held)
        assert replicas.slots() == 0  # each slot was given back before its answer went out

        # A burst on both at once: exactly the limit is admitted, whichever replica each request reached.
        gate.clear()
        burst = [pool.submit(solve, replicas, i % 2) for i in range(8)]
        until(lambda: sum(f.done() for f in burst) == len(burst) - LIMIT)
        until(lambda: replicas.llama.state.in_flight == LIMIT)
        assert replicas.slots() == LIMIT and replicas.llama.state.peak == LIMIT
        refusals = [f.result() for f in burst if f.done()]
        assert all(r.status_code == 503 and r.headers["retry-after"] for r in refusals)
        gate.set()
        assert sorted(f.result().status_code for f in burst) == [200] * LIMIT + [503] * (len(burst) - LIMIT)
    assert replicas.slots() == 0 and replicas.llama.state.peak == LIMIT
    assert solve(replicas, 1).status_code == 200  # and the slots can be taken again


def finished(replicas: Replicas, rag: int, task_id: str) -> dict[str, Any] | None:
    task: dict[str, Any] = replicas.call(rag, "GET", f"/v1/tasks/{task_id}").json()
    return task if task["finished_at"] else None


def events_of(replicas: Replicas, task_id: str) -> list[str]:
    with replicas.redis.client() as client:
        return [f[b"type"].decode() for _, f in client.xrange(f"atlas:task:{task_id}:events")]


def test_tasks_belong_to_their_owner_on_both_and_two_workers_finish_each_once(replicas: Replicas) -> None:
    gate = replicas.llama.state.gate
    gate.clear()
    ids = []
    for i in range(6):  # submitted through both replicas
        answer = replicas.call(i % 2, "POST", "/v1/tasks", json=TASK)
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["task_id"])
    for task_id in ids:
        for rag in (0, 1):
            assert replicas.call(rag, "GET", f"/v1/tasks/{task_id}").status_code == 200
            for method, path in (("GET", f"/v1/tasks/{task_id}"), ("DELETE", f"/v1/tasks/{task_id}"),
                                 ("GET", f"/v1/tasks/{task_id}/events")):
                foreign = replicas.call(rag, method, path, owner="2")
                assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "task_not_found"
    for rag in (0, 1):
        assert replicas.call(rag, "GET", "/v1/tasks", owner="2").json()["data"] == []
        assert {t["task_id"] for t in replicas.call(rag, "GET", "/v1/tasks").json()["data"]} == set(ids)

    env = replicas.env | {"ATLAS_WORKER_CONCURRENCY": "1"}
    with ExitStack() as opened, service("atlas_worker", env, "ATLAS_WORKER_PORT", replicas.logs) as one, \
            service("atlas_worker", env, "ATLAS_WORKER_PORT", replicas.logs) as two:
        def running() -> int:
            return sum(replicas.call(1, "GET", f"/v1/tasks/{t}").json()["status"] == "running" for t in ids)

        opened.callback(gate.set)  # whatever fails, nothing is left waiting on the gate
        until(lambda: running() == 2)  # one task each (concurrency 1): both workers are busy at once
        gate.set()
        tasks = [until(partial(finished, replicas, i % 2, task_id)) for i, task_id in enumerate(ids)]
    workers = set()
    for task in tasks:
        assert (task["status"], task["deliveries"], len(task["attempts"])) == ("succeeded", 1, 1), task
        assert events_of(replicas, task["task_id"]).count("done") == 1
        workers.add(task["attempts"][0]["worker"])
    assert any(f"-{one.proc.pid}-" in w for w in workers) and any(f"-{two.proc.pid}-" in w for w in workers)
    with replicas.redis.client() as client:  # one telemetry record per task: one attempt ran, once
        solves = [f[b"task_id"].decode() for _, f in client.xrange("atlas:solves")]
    assert all(solves.count(t) == 1 for t in ids)
