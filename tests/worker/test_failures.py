"""The task system's failure cases with real parts: task-worker processes (killed with SIGKILL), rag-api on a
socket, the real sandbox, a Redis with AOF that is restarted, and the scripted model server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from atlas_cli.plan import redis_binary
from atlas_core.queue import PRIORITIES, stream_key
from atlas_core.settings import load_settings
from atlas_rag.app import create_app as rag_app
from atlas_rag.settings import Settings as RagSettings
from tests.conftest import LLAMA_KEY, METRICS_TOKEN, PROXY_TOKEN, SANDBOX_SIGNING, RedisServer, ServerThread, free_port
from tests.rag.fake_llm import fake, fenced

ADD = fenced("def add(a, b):\n    return a + b")
TASK = {"prompt": "Write a function add(a, b) that returns the sum of a and b.", "entry_point": "add",
        "tests": [{"assert": "assert add(1, 2) == 3"}, {"args": [5, 7], "expected": 12}],
        "budget": {"k": 1, "self_tests": False, "repair_rounds": 0}}


class DurableRedis(RedisServer):
    """A Redis with AOF (fsync always) in its own directory, which a test can restart on the same port."""

    def __init__(self, directory: Path) -> None:
        super().__init__(port=free_port(), password="p" * 8 + os.urandom(8).hex())
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction",
             "--requirepass", self.password], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        until(self.ready, 10)

    def ready(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()  # a clean shutdown; the AOF has every write anyway (fsync always)
        self.proc.wait(timeout=10)


def until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)
    return value


@dataclass
class Platform:
    redis: DurableRedis
    rag: str
    llm: Any
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def worker(self, **overrides: str) -> subprocess.Popen[bytes]:
        env = self.env | {"ATLAS_WORKER_PORT": str(free_port())} | overrides
        log = Path(self.env["HOME"]) / f"worker-{len(self.workers) + 1}.log"  # kept for a failing test's reader
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "atlas_worker"], env=env, stdout=out, stderr=out)
        self.workers.append(proc)
        return proc

    def call(self, method: str, path: str, owner: str = "1", headers: dict[str, str] | None = None,
             **kwargs: Any) -> httpx.Response:
        sent = {"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": owner} | (headers or {})
        return httpx.request(method, f"{self.rag}{path}", headers=sent, timeout=30, **kwargs)

    def submit(self, headers: dict[str, str] | None = None, **extra: Any) -> str:
        response = self.call("POST", "/v1/tasks", json=TASK | extra, headers=headers)
        assert response.status_code == 202, response.text
        return str(response.json()["task_id"])

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/v1/tasks/{task_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def finished(self, task_id: str, timeout: float = 60) -> dict[str, Any]:
        return dict(until(lambda: (t := self.task(task_id))["finished_at"] and t, timeout))

    def events(self, task_id: str, after: str | None = None) -> list[dict[str, Any]]:
        out = []
        headers = {"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": "1"} | (
            {"Last-Event-ID": after} if after else {})
        with httpx.stream("GET", f"{self.rag}/v1/tasks/{task_id}/events", headers=headers, timeout=30) as answer:
            entry = ""
            for line in answer.iter_lines():
                if line.startswith("id: "):
                    entry = line[4:]
                elif line.startswith("data: "):
                    out.append(json.loads(line[6:]) | {"_id": entry})
        return out


@pytest.fixture
def platform(sandbox_url: str, llm: ServerThread, tmp_path: Path) -> Iterator[Platform]:
    store = DurableRedis(tmp_path / "redis")
    store.directory.mkdir()
    store.start()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ATLAS_METRICS_TOKEN": METRICS_TOKEN,
           "ATLAS_PROXY_TOKEN": PROXY_TOKEN,
           "ATLAS_LLAMA_API_KEY": LLAMA_KEY, "ATLAS_SANDBOX_SIGNING_KEY": SANDBOX_SIGNING,
           "ATLAS_REDIS_URL": store.url, "ATLAS_REDIS_PASSWORD": store.password,
           "ATLAS_STATE_DIR": str(tmp_path / "state"), "ATLAS_LLAMA_URL": llm.url, "ATLAS_SANDBOX_URL": sandbox_url,
           "ATLAS_EMBED_URL": f"http://127.0.0.1:{free_port()}", "ATLAS_WORKER_VISIBILITY_S": "2",
           "ATLAS_WORKER_RETRY_BACKOFF_S": "0.2", "ATLAS_LOG_LEVEL": "WARNING"}
    fake(llm).script = lambda body: ADD
    workers: list[subprocess.Popen[bytes]] = []
    try:  # the Redis stops whatever fails, setting up included: no redis-server outlives its test
        with ServerThread(rag_app(load_settings(RagSettings, environ=env))) as rag:
            yield Platform(store, rag.url, fake(llm), env, workers)
    finally:
        for proc in workers:
            proc.kill()
            proc.wait(timeout=10)
        store.stop()


def done_events(platform: Platform, task_id: str) -> int:
    with platform.redis.client() as client:
        return sum(1 for _, fields in client.xrange(f"atlas:task:{task_id}:events") if fields[b"type"] == b"done")


def queue_is_empty(platform: Platform) -> bool:
    with platform.redis.client() as client:
        return sum(int(client.xlen(stream_key(p))) for p in PRIORITIES) == 0


def test_a_task_with_tests_is_verified_and_its_events_tell_the_story(platform: Platform) -> None:
    platform.worker()
    task_id = platform.submit()
    task = platform.finished(task_id)
    assert task["status"] == "succeeded" and task["stop_reason"] == "SUCCESS"
    assert task["result"]["verified"] is True and "return a + b" in task["result"]["code"]
    assert [a["verified"] for a in task["attempts"]] == [True]
    kinds = [e["type"] for e in platform.events(task_id)]
    assert kinds[:3] == ["queued", "started", "attempt"] and kinds[-2:] == ["passed", "done"]
    assert "progress" in kinds
    assert queue_is_empty(platform)


def test_following_a_long_task_gets_keep_alives_until_it_is_done(platform: Platform) -> None:
    platform.llm.script = lambda body: (ADD, 6.0)  # longer than the Redis client's socket timeout (5 s)
    platform.worker()
    task_id = platform.submit()
    headers = {"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": "1"}
    with httpx.stream("GET", f"{platform.rag}/v1/tasks/{task_id}/events", headers=headers, timeout=30) as answer:
        lines = list(answer.iter_lines())
    assert ": keep-alive" in lines and not any("unavailable" in line for line in lines)
    assert json.loads([x for x in lines if x.startswith("data: ")][-1][6:])["status"] == "succeeded"


def test_a_failing_answer_is_fed_back_and_repaired_in_the_next_attempt(platform: Platform) -> None:
    def script(body: dict[str, Any]) -> str:
        text = str(body["messages"][-1]["content"])
        return ADD if "def add(a, b):\n    return a - b" in text else fenced("def add(a, b):\n    return a - b")

    platform.llm.script = script
    platform.worker()
    task = platform.finished(platform.submit(max_attempts=3))
    assert task["stop_reason"] == "SUCCESS"
    first, second = task["attempts"]
    assert first["verified"] is False and "return a - b" in first["failing"][0]["code"]
    assert second["verified"] is True and second["k"] == 2  # k escalates: k x attempt
    assert second["heat"] > first["heat"]
    # the repair prompt carried the failing code and its failure
    repairs = [r for r in platform.llm.requests if "return a - b" in str(r["messages"][-1]["content"])]
    assert repairs and "add(1, 2)" in str(repairs[0]["messages"][-1]["content"])


def test_kill_9_mid_task_is_reclaimed_and_finished_once(platform: Platform) -> None:
    platform.llm.script = lambda body: (ADD, 4.0)
    first = platform.worker()
    task_id = platform.submit()
    until(lambda: platform.llm.requests)  # the first worker is in the middle of its attempt
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    platform.llm.script = lambda body: ADD
    second = platform.worker()
    task = platform.finished(task_id)
    assert task["status"] == "succeeded" and task["deliveries"] == 2
    note, attempt = task["attempts"]
    assert note["kind"] == "interruption" and f"-{first.pid}-" in note["worker"]
    assert f"-{second.pid}-" in note["reclaimed_by"] and f"-{second.pid}-" in attempt["worker"]
    assert done_events(platform, task_id) == 1
    assert queue_is_empty(platform)


def test_sigterm_hands_the_running_task_back_to_another_worker(platform: Platform) -> None:
    platform.llm.script = lambda body: (ADD, 30.0)
    first = platform.worker(ATLAS_WORKER_SHUTDOWN_GRACE_S="0.5")
    task_id = platform.submit()
    until(lambda: platform.llm.requests)
    first.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught: the exit reads as SIGTERM's
    assert first.wait(timeout=15) == -signal.SIGTERM
    task = platform.task(task_id)
    assert (task["status"], task["deliveries"]) == ("queued", 0)
    platform.llm.script = lambda body: ADD
    platform.worker()
    task = platform.finished(task_id)
    assert (task["status"], task["deliveries"]) == ("succeeded", 1)
    assert "handed_back" in [e["type"] for e in platform.events(task_id)]


def test_a_redis_restart_loses_no_queued_task(platform: Platform) -> None:
    platform.llm.script = lambda body: (ADD, 0.5)
    ids = [platform.submit() for _ in range(5)]
    platform.worker()
    until(lambda: any(platform.task(t)["status"] == "succeeded" for t in ids))
    platform.redis.stop()
    platform.redis.start()  # the same data directory: the AOF brings the queue back
    # rag-api and the worker were not restarted: both reconnect
    tasks = [platform.finished(t, timeout=90) for t in ids]
    assert [t["status"] for t in tasks] == ["succeeded"] * 5
    assert [done_events(platform, t) for t in ids] == [1] * 5
    assert queue_is_empty(platform)


def test_deadline_and_cancel(platform: Platform) -> None:
    platform.llm.script = lambda body: (ADD, 30.0)
    platform.worker()
    late = platform.submit(deadline_s=2)
    task = platform.finished(late)
    assert task["status"] == "failed" and task["stop_reason"] == "DEADLINE"
    assert task["finished_at"] - task["submitted_at"] < 10

    cancelled = platform.submit()
    until(lambda: platform.task(cancelled)["status"] == "running")
    asked = time.monotonic()
    answer = platform.call("DELETE", f"/v1/tasks/{cancelled}")
    assert answer.status_code == 202 and answer.json()["status"] == "cancelling"
    task = platform.finished(cancelled)
    assert task["status"] == "cancelled" and task["stop_reason"] == "CANCELLED"
    assert time.monotonic() - asked < 5  # within the attempt, not after it
    assert platform.call("DELETE", f"/v1/tasks/{cancelled}").json()["status"] == "cancelled"
    events = platform.events(cancelled)
    assert [e["type"] for e in platform.events(cancelled, after="1-2-3")] == [e["type"] for e in events]  # bad id
    resumed = platform.events(cancelled, after=events[0]["_id"])  # Last-Event-ID: only what came after
    assert [e["type"] for e in resumed] == [e["type"] for e in events[1:]] and resumed[-1]["type"] == "done"


def test_a_task_that_waited_past_its_deadline_never_runs(platform: Platform) -> None:
    task_id = platform.submit(deadline_s=1)
    time.sleep(1.5)
    platform.worker()
    task = platform.finished(task_id)
    assert (task["status"], task["stop_reason"], task["attempts_made"]) == ("failed", "DEADLINE", 0)
    assert platform.llm.requests == []


def refusing_sandbox() -> FastAPI:
    """A sandbox host without the task's language: it refuses every run with a 400, as the real one does."""
    app = FastAPI()

    @app.post("/judge")
    @app.post("/execute")
    async def refuse() -> JSONResponse:
        return JSONResponse({"error": {"message": "language: rust is not installed on this sandbox host",
                                       "type": "invalid_request_error"}}, 400)

    return app


def test_a_language_the_sandbox_lacks_is_unrecoverable_without_retries(platform: Platform) -> None:
    with ServerThread(refusing_sandbox()) as sandbox:
        platform.worker(ATLAS_SANDBOX_URL=sandbox.url)
        task = platform.finished(platform.submit())
    assert (task["status"], task["stop_reason"], task["deliveries"]) == ("failed", "UNRECOVERABLE", 1)
    assert "rust is not installed" in task["message"]


def test_tasks_belong_to_their_owner(platform: Platform) -> None:
    task_id = platform.submit()
    for method, path in (("GET", f"/v1/tasks/{task_id}"), ("DELETE", f"/v1/tasks/{task_id}"),
                         ("GET", f"/v1/tasks/{task_id}/events")):
        answer = platform.call(method, path, owner="2")
        assert answer.status_code == 404, (method, path)
        assert answer.json()["error"]["code"] == "task_not_found"
    assert platform.call("GET", "/v1/tasks", owner="2").json()["data"] == []
    mine = platform.call("GET", "/v1/tasks").json()["data"]
    assert [t["task_id"] for t in mine] == [task_id] and mine[0]["status"] == "queued"


def test_bad_submissions_are_refused_with_the_field(platform: Platform) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"priority": "p9"}, "priority"),
        ({"tests": [], "prompt": "Write something nice."}, "tests"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"deadline_s": -1}, "deadline_s"),
    ]
    for extra, param in cases:
        answer = platform.call("POST", "/v1/tasks", json=TASK | extra)
        assert answer.status_code in (400, 422), answer.text
        assert param in answer.text
    assert platform.call("POST", "/v1/tasks", json=TASK, owner="").status_code == 400
    stats = platform.call("GET", "/v1/queue/stats").json()
    assert stats["queued"] == {"p0": 0, "p1": 0, "p2": 0} and stats["limit"] == 10_000
    assert "redis" not in stats and stats["mine"] == {"active": 0, "quota": 100}  # rag-api's default quota
    detail = httpx.get(f"{platform.rag}/internal/queue/stats", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert detail.json()["redis"] == {"maxmemory_policy": "noeviction", "appendonly": "yes"}
    assert platform.call("GET", "/internal/queue/stats").status_code == 401  # the proxy's credential is not enough


def key_of(key_id: int, key_tpm: int, user_tpm: int = 0) -> dict[str, str]:
    """What the proxy adds to a submission: the key and the limits its attempts are charged against."""
    return {"X-Atlas-Key-Id": str(key_id), "X-Atlas-Limits": json.dumps(
        {"key_tokens_per_min": key_tpm, "user_tokens_per_min": user_tpm, "max_queued_tasks": 10})}


def test_a_tasks_attempts_are_charged_to_its_keys_tokens_per_minute_and_metered_once(platform: Platform) -> None:
    platform.llm.script = lambda body: "no code here"  # every attempt fails: three attempts, each charged
    platform.worker()
    task_id = platform.submit(headers=key_of(5, 100_000, 200_000), max_attempts=3)
    task = platform.finished(task_id)
    spent = task["prompt_tokens"] + task["completion_tokens"]
    assert task["attempts_made"] == 3 and spent > 0
    with platform.redis.client() as client:
        # the key's and the user's windows hold what the attempts spent (each reserved its ceiling, then settled)
        assert int(client.get("atlas:rl:{u1}:k5:toksum") or 0) == spent
        assert int(client.get("atlas:rl:{u1}:toksum") or 0) == spent
        usage = [{k.decode(): v.decode() for k, v in f.items()} for _, f in client.xrange("atlas:usage")]
    mine = [u for u in usage if u["key_id"] == "5"]
    assert len(mine) == 3 and all(u["requests"] == "0" for u in mine)  # one entry per attempt, none per request
    assert sum(int(u["prompt_tokens"]) + int(u["completion_tokens"]) for u in mine) == spent


def test_a_task_waits_for_its_keys_tokens_per_minute_and_never_exceeds_them(platform: Platform) -> None:
    platform.llm.script = lambda body: ADD
    with platform.redis.client() as client:  # the key's minute is almost spent by requests a moment ago
        now_ms = int(time.time() * 1000)
        client.zadd("atlas:rl:{u1}:k6:tok", {f"earlier|{19_900}": now_ms - 55_000})
        client.set("atlas:rl:{u1}:k6:toksum", 19_900)
    platform.worker()
    task_id = platform.submit(headers=key_of(6, 20_000))
    task = platform.finished(task_id, timeout=60)  # the earlier requests leave the window after about 5 s
    events = platform.events(task_id)
    assert task["status"] == "succeeded", (task, events)
    waiting = [e for e in events if e["type"] == "waiting"]
    assert waiting and "tokens per minute" in waiting[0]["message"], events


def test_a_task_that_can_never_fit_its_keys_minute_is_unrecoverable(platform: Platform) -> None:
    platform.worker()
    task_id = platform.submit(headers=key_of(7, 50))
    task = platform.finished(task_id)
    assert task["stop_reason"] == "UNRECOVERABLE" and "tokens per minute" in task["message"]


def test_event_streams_wait_on_their_own_redis_pool_and_never_starve_requests(platform: Platform) -> None:
    """rag-api with one Redis connection for event streams: a second stream waits for it (saying so in a comment),
    while reading and submitting tasks go on at once on the connections requests have."""
    env = platform.env | {"ATLAS_TASK_STREAM_CONNECTIONS": "1", "ATLAS_REDIS_POOL_WAIT_S": "0.3"}
    with ServerThread(rag_app(load_settings(RagSettings, environ=env))) as rag:
        headers = {"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": "1"}
        task_id = httpx.post(f"{rag.url}/v1/tasks", json=TASK, headers=headers).json()["task_id"]
        url = f"{rag.url}/v1/tasks/{task_id}/events"
        with httpx.Client(timeout=30) as client:
            first = client.send(client.build_request("GET", url, headers=headers), stream=True)
            second = client.send(client.build_request("GET", url, headers=headers), stream=True)
            try:
                lines = second.iter_lines()
                assert any("unavailable; retrying" in next(lines) for _ in range(20))  # it waits, it is not refused
                started = time.monotonic()
                assert client.get(f"{rag.url}/v1/tasks/{task_id}", headers=headers).status_code == 200
                assert client.post(f"{rag.url}/v1/tasks", json=TASK, headers=headers).status_code == 202
                assert time.monotonic() - started < 2  # not behind the streams
            finally:
                first.close()
                second.close()
