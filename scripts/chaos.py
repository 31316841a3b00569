"""``make chaos``: the whole platform under mixed load from several users while each service in turn is killed with
SIGKILL, Redis is restarted and llama-server is stalled; then the books are checked.

It starts ATLAS with ``atlas up`` (real models, real sandbox, the Redis with per-service ACL users) in a fresh state
directory on free loopback ports, runs the load and the disruptions side by side, lets the tasks finish, and reports:

- requests served, by kind and status, and errors by kind (connection refused or reset, timeout, 5xx);
- every 5xx and connection error, placed in or out of the window of a disruption (from the moment it starts until
  the service is ready again, plus a grace for requests in flight); outside one is a failure, and inside one every
  error must be a 503 with Retry-After, or a refused or reset connection when the service killed is the proxy;
- tasks submitted against tasks finished, and each finished exactly once (one ``done`` event);
- each key's usage in the portal against the requests the load generator saw admitted (a request cut off by a
  killed proxy may or may not have been, so those widen the range);
- how long each service took to be ready again, and whether the platform is healthy after.

    .venv/bin/python scripts/chaos.py --out bench-results/chaos.json     # about 12 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from bench_sandbox import free_port

PORT_KEYS = ["ATLAS_REDIS_PORT", "ATLAS_LLAMA_PORT", "ATLAS_EMBED_PORT", "ATLAS_SANDBOX_PORT", "ATLAS_PORTAL_PORT",
             "ATLAS_RAG_PORT", "ATLAS_PROXY_PORT", "ATLAS_WORKER_PORT", "ATLAS_DASHBOARD_PORT"]
# Small budgets, so a CPU answers in seconds; timeouts short enough that a stalled model is a 503, not a hang.
SETTINGS = {"ATLAS_RAG_K": "1", "ATLAS_RAG_MAX_TOKENS": "48", "ATLAS_RAG_REPAIR_ROUNDS": "0",
            "ATLAS_RAG_SELF_TESTS": "false", "ATLAS_RAG_DEADLINE_S": "60", "ATLAS_RAG_LLM_TIMEOUT_S": "20",
            "ATLAS_PROXY_UPSTREAM_TIMEOUT_S": "20", "ATLAS_WORKER_VISIBILITY_S": "10", "ATLAS_TASK_DEADLINE_S": "900",
            "ATLAS_LOG_LEVEL": "WARNING"}
KILLED = ["llm-proxy", "api-portal", "rag-api", "sandbox", "task-worker", "embedding-server", "dashboard"]
GRACE_S = 20.0  # requests in flight when a service comes back still end inside its window (they started in it)
REQUEST_TIMEOUT_S = 90.0  # longer than any answer takes here: a request that reaches it hung
ADD = "Write a Python function add(a, b) that returns the sum of a and b.\n>>> add(2, 3)\n5\n"
TEST = [{"assert": "assert add(2, 3) == 5"}]


@dataclass
class Call:
    user: str
    kind: str
    started: float
    ended: float
    status: int  # 0: no answer (connection refused or reset, timeout)
    error: str = ""  # the kind of failure, for the report
    code: str = ""  # the OpenAI error code, when there is one
    retry_after: bool = False
    metered: bool = False  # the proxy said so (X-Atlas-Metered): it counts in the key's usage


@dataclass
class Window:
    what: str
    started: float
    ready: float | None = None  # when it was observed ready again
    took_s: float | None = None

    def covers(self, call: Call) -> bool:
        end = (self.ready or time.time()) + GRACE_S
        return call.started <= end and call.ended >= self.started


@dataclass
class Run:
    calls: list[Call] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> user
    stop: bool = False


class Platform:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
        self.env |= {key: str(free_port()) for key in PORT_KEYS} | SETTINGS | {"ATLAS_STATE_DIR": str(state_dir)}

    def atlas(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "atlas_cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def status(self) -> dict[str, dict[str, Any]]:
        report = json.loads(self.atlas("status", "--json", timeout=60).stdout)
        return {row["name"]: row for row in report["services"]}

    def secrets(self) -> dict[str, str]:
        lines = (self.state_dir / "secrets.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def redis(self) -> redis.Redis:
        port = self.env["ATLAS_REDIS_PORT"]
        return redis.Redis(port=int(port), password=self.secrets()["ATLAS_REDIS_PASSWORD"], socket_timeout=5)


async def call(client: httpx.AsyncClient, run: Run, user: str, kind: str, method: str, url: str,
               **kwargs: Any) -> httpx.Response | None:
    started = time.time()
    try:
        response = await client.request(method, url, timeout=REQUEST_TIMEOUT_S, **kwargs)
    except httpx.TimeoutException:
        run.calls.append(Call(user, kind, started, time.time(), 0, "timeout"))
        return None
    except httpx.HTTPError as exc:
        run.calls.append(Call(user, kind, started, time.time(), 0, type(exc).__name__))
        return None
    code = ""
    if response.status_code >= 400:
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            code = response.json()["error"]["code"] or ""
    run.calls.append(Call(user, kind, started, time.time(), response.status_code,
                          f"http {response.status_code}" if response.status_code >= 500 else "", code,
                          "retry-after" in response.headers, "x-atlas-metered" in response.headers))
    return response


async def user_load(run: Run, proxy: str, user: str, key: str, model: str, embed_model: str, seed: int) -> None:
    """One user's mix of requests until the run stops: chats (plain and streamed), embeddings, verified solves and
    durable tasks whose events it follows."""
    rnd = random.Random(seed)  # noqa: S311 (a load pattern, not a secret)
    headers = {"Authorization": f"Bearer {key}"}
    chat = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "Say hi."}]}
    async with httpx.AsyncClient(base_url=proxy, headers=headers) as client:
        while not run.stop:
            kind = rnd.choices(["chat", "stream", "embed", "solve", "task"], weights=[4, 3, 3, 2, 2])[0]
            if kind == "chat":
                await call(client, run, user, kind, "POST", "/v1/chat/completions", json=chat)
            elif kind == "stream":
                await stream(client, run, user, chat | {"stream": True})
            elif kind == "embed":
                await call(client, run, user, kind, "POST", "/v1/embeddings", json={"model": embed_model,
                                                                                      "input": "def f(): pass"})
            elif kind == "solve":
                await call(client, run, user, kind, "POST", "/v1/solve", json={"problem": ADD, "budget": {"k": 1}})
            else:
                answer = await call(client, run, user, kind, "POST", "/v1/tasks", json={
                    "prompt": ADD, "tests": TEST, "max_attempts": 2, "budget": {"k": 1}})
                if answer is not None and answer.status_code == 202:
                    task_id = answer.json()["task_id"]
                    run.tasks[task_id] = user
                    await follow(client, run, user, task_id)
            await asyncio.sleep(rnd.uniform(0.05, 0.5))


async def stream(client: httpx.AsyncClient, run: Run, user: str, body: dict[str, Any]) -> None:
    started = time.time()
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT_S) as answer:
            async for _ in answer.aiter_bytes():
                pass
        run.calls.append(Call(user, "stream", started, time.time(), answer.status_code,
                              f"http {answer.status_code}" if answer.status_code >= 500 else "", "",
                              "retry-after" in answer.headers, "x-atlas-metered" in answer.headers))
    except httpx.HTTPError as exc:
        run.calls.append(Call(user, "stream", started, time.time(), 0, type(exc).__name__))


async def follow(client: httpx.AsyncClient, run: Run, user: str, task_id: str) -> None:
    """A task's events for up to 20 s (the task goes on without its follower)."""
    started = time.time()
    status, metered, retry = 0, False, False
    try:
        async with asyncio.timeout(20):
            async with client.stream("GET", f"/v1/tasks/{task_id}/events", timeout=REQUEST_TIMEOUT_S) as answer:
                status, metered = answer.status_code, "x-atlas-metered" in answer.headers
                retry = "retry-after" in answer.headers
                async for _ in answer.aiter_bytes():
                    pass
    except TimeoutError:
        pass  # stopped following: not a failure
    except httpx.HTTPError as exc:
        run.calls.append(Call(user, "events", started, time.time(), 0, type(exc).__name__))
        return
    run.calls.append(Call(user, "events", started, time.time(), status,
                          f"http {status}" if status >= 500 else "", "", retry, metered))


async def until_ready(platform: Platform, name: str, since: float, within_s: float = 240) -> float | None:
    while time.time() - since < within_s:
        await asyncio.sleep(0.5)
        row = (await asyncio.to_thread(platform.status)).get(name, {})
        if row.get("ready"):
            return time.time()
    return None


async def disrupt(platform: Platform, run: Run, pause_s: float) -> None:
    """Each service killed in turn, then Redis restarted, then llama-server stalled for 20 s."""
    await asyncio.sleep(pause_s)
    for name in [*KILLED, "redis"]:
        row = (await asyncio.to_thread(platform.status))[name]
        window = Window(f"{'restart' if name == 'redis' else 'SIGKILL'} {name}", time.time())
        run.windows.append(window)
        os.kill(row["pid"], signal.SIGTERM if name == "redis" else signal.SIGKILL)  # Redis: a clean restart
        await asyncio.sleep(1.0)  # the supervisor notices within POLL_S; the old pid must not look ready
        window.ready = await until_ready(platform, name, window.started)
        window.took_s = round(window.ready - window.started, 1) if window.ready else None
        await asyncio.sleep(pause_s)
    llama = (await asyncio.to_thread(platform.status))["llama-server"]["pid"]
    window = Window("stall llama-server (SIGSTOP 20 s)", time.time())
    run.windows.append(window)
    os.kill(llama, signal.SIGSTOP)
    await asyncio.sleep(20)
    os.kill(llama, signal.SIGCONT)
    window.ready = await until_ready(platform, "llama-server", window.started)
    window.took_s = round(window.ready - window.started, 1) if window.ready else None
    await asyncio.sleep(pause_s)


def judge(run: Run, proxy_windows: list[Window]) -> dict[str, Any]:
    """Every failed call, in or out of a disruption's window, and whether it failed the way it should."""
    failures = [c for c in run.calls if c.status == 0 or c.status >= 500]
    outside, wrong = [], []
    for c in failures:
        windows = [w for w in run.windows if w.covers(c)]
        if not windows:
            outside.append(asdict(c))
        elif c.status == 0 and not (c.error == "timeout" and any("llama" in w.what for w in windows)) \
                and not any(w in proxy_windows for w in windows):
            wrong.append(asdict(c))  # no answer at all, while the proxy itself was up
        elif c.status >= 500 and not (c.status == 503 and c.retry_after):
            wrong.append(asdict(c))
    return {"errors": len(failures), "outside_windows": outside, "not_503_with_retry_after": wrong}


def check_tasks(platform: Platform, run: Run, keys: dict[str, str], deadline_s: float) -> dict[str, Any]:
    """Wait for every submitted task to finish; then each must have exactly one outcome."""
    proxy = f"http://127.0.0.1:{platform.env['ATLAS_PROXY_PORT']}"
    pending, finished = set(run.tasks), {}
    deadline = time.time() + deadline_s
    with httpx.Client(base_url=proxy, timeout=30) as client:
        while pending and time.time() < deadline:
            for task_id in list(pending):
                user, started = run.tasks[task_id], time.time()
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = client.get(f"/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {keys[user]}"})
                    # these reads count in the key's usage like the load's own requests
                    run.calls.append(Call(user, "check", started, time.time(), answer.status_code,
                                          metered="x-atlas-metered" in answer.headers))
                    if answer.status_code == 200 and answer.json()["finished_at"]:
                        finished[task_id] = answer.json()["status"]
                        pending.discard(task_id)
            time.sleep(2)
    with platform.redis() as client:
        outcomes = {t: sum(1 for _, f in client.xrange(f"atlas:task:{t}:events") if f[b"type"] == b"done")
                    for t in run.tasks}
    return {"submitted": len(run.tasks), "finished": len(finished), "lost": sorted(pending),
            "by_status": dict(Counter(finished.values())),
            "finished_twice": sorted(t for t, n in outcomes.items() if n > 1),
            "finished_exactly_once": sum(1 for n in outcomes.values() if n == 1)}


def check_usage(platform: Platform, run: Run, users: dict[str, dict[str, Any]], admin: dict[str, str]
                ) -> dict[str, Any]:
    """Each key's requests in the portal against what the generator saw metered (every answer after admission says
    so; a call with no answer, cut off by a killed proxy, may or may not have been)."""
    portal = f"http://127.0.0.1:{platform.env['ATLAS_PORTAL_PORT']}"
    token = httpx.post(f"{portal}/api/auth/login", timeout=30,
                       json={"username": admin["username"], "password": admin["password"]}).json()["access_token"]
    expected: dict[str, tuple[int, int]] = {}
    for user in users:
        mine = [c for c in run.calls if c.user == user]
        known = sum(1 for c in mine if c.metered)
        maybe = sum(1 for c in mine if c.status == 0)
        expected[user] = (known, known + maybe)
    seen: dict[str, int] = {}
    for _ in range(60):  # the portal rolls the usage stream up in the background
        rows = httpx.get(f"{portal}/api/usage", params={"days": 1}, timeout=30,
                         headers={"Authorization": f"Bearer {token}"}).json()["rows"]
        seen = {user: sum(r["requests"] for r in rows if r["key_id"] == info["key_id"])
                for user, info in users.items()}
        if all(low <= seen[u] <= high for u, (low, high) in expected.items()):
            break
        time.sleep(2)
    with platform.redis() as client:  # what the usage stream holds, by status: to tell a mismatch's source
        raw = [f for _, f in client.xrange("atlas:usage")]
    streamed = {user: dict(Counter(f[b"status"].decode() for f in raw if f[b"key_id"] == str(info["key_id"]).encode()
                                   and f.get(b"requests", b"1") != b"0")) for user, info in users.items()}
    saw = {user: dict(Counter(f"{c.kind} {c.status}" for c in run.calls if c.user == user and c.metered))
           for user in users}
    return {user: {"metered": seen[user], "expected_min": low, "expected_max": high,
                   "ok": low <= seen[user] <= high, "stream_by_status": streamed[user], "seen_metered": saw[user]}
            for user, (low, high) in expected.items()}


async def load_and_chaos(platform: Platform, run: Run, users: dict[str, dict[str, Any]], models: tuple[str, str],
                         pause_s: float) -> None:
    proxy = f"http://127.0.0.1:{platform.env['ATLAS_PROXY_PORT']}"
    loads = [asyncio.create_task(user_load(run, proxy, user, info["key"], *models, seed=i))
             for i, (user, info) in enumerate(users.items())]
    await disrupt(platform, run, pause_s)
    run.stop = True
    await asyncio.gather(*loads, return_exceptions=True)


def setup_users(platform: Platform, count: int) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    admin = json.loads((platform.state_dir / "admin.json").read_text())
    portal = f"http://127.0.0.1:{platform.env['ATLAS_PORTAL_PORT']}"
    token = httpx.post(f"{portal}/api/auth/login", json={"username": "admin", "password": admin["password"]},
                       timeout=30).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    users: dict[str, dict[str, Any]] = {}
    for i in range(count):
        name, password = f"chaos{i}", f"chaos-password-{i}-xyz"
        httpx.post(f"{portal}/api/auth/register", headers=headers, timeout=30,
                   json={"username": name, "email": f"{name}@example.com", "password": password}).raise_for_status()
        login = httpx.post(f"{portal}/api/auth/login", json={"username": name, "password": password}, timeout=30)
        key = httpx.post(f"{portal}/api/keys", headers={"Authorization": f"Bearer {login.json()['access_token']}"},
                         json={"name": "chaos"}, timeout=30).json()
        users[name] = {"key": key["key"], "key_id": key["id"]}
    return users, admin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/chaos.json"))
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--pause-s", type=float, default=15.0, help="load between one disruption and the next")
    args = parser.parse_args()
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="atlas-chaos-") as tmp:
        platform = Platform(Path(tmp) / "state")
        up = platform.atlas("up")
        if up.returncode != 0:
            raise SystemExit(f"atlas up failed:\n{up.stdout}\n{up.stderr}")
        try:
            started = time.time()
            users, admin = setup_users(platform, args.users)
            services = platform.status()
            models = ("SmolLM2-135M-Instruct.Q4_1", "all-MiniLM-L6-v2")
            run = Run()
            asyncio.run(load_and_chaos(platform, run, users, models, args.pause_s))
            load_s = time.time() - started
            proxy_windows = [w for w in run.windows if "llm-proxy" in w.what]
            calls = judge(run, proxy_windows)
            tasks = check_tasks(platform, run, {u: i["key"] for u, i in users.items()}, deadline_s=240)
            usage = check_usage(platform, run, users, admin)
            after = platform.status()
        finally:
            down = platform.atlas("down", timeout=180)
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)), "wall_s": round(time.time() - began),
        "load_s": round(load_s), "users": len(users), "services": sorted(services),
        "requests": {"total": len(run.calls), "by_kind_and_status": {
            f"{kind} {status}": n for (kind, status), n in sorted(Counter(
                (c.kind, c.status) for c in run.calls).items())},
            "errors_by_kind": dict(Counter(c.error for c in run.calls if c.error))},
        "disruptions": [{"what": w.what, "ready_again_s": w.took_s} for w in run.windows],
        "errors": calls, "tasks": tasks, "usage": usage,
        "healthy_after": all(row["ready"] for row in after.values()), "stopped_cleanly": down.returncode == 0,
    }
    report["passed"] = (not calls["outside_windows"] and not calls["not_503_with_retry_after"] and not tasks["lost"]
                        and not tasks["finished_twice"] and all(u["ok"] for u in usage.values())
                        and report["healthy_after"] and all(w.took_s is not None for w in run.windows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("requests",)}, indent=2))
    print(f"report: {args.out}; {'PASSED' if report['passed'] else 'FAILED'}")
    raise SystemExit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
