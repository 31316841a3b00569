"""make bench-proxy: the latency llm-proxy adds, side by side with LiteLLM's proxy, in one run.

Every part runs as its own process on 127.0.0.1: a fake OpenAI-compatible backend that streams short
completions (tests/proxy/fake_upstream.py), Redis, api-portal and llm-proxy as `atlas up` runs them, and
LiteLLM's proxy (a pinned release in its own venv, with a virtual key, PostgreSQL and Redis) when available.
The same load goes (a) straight to the backend, (b) through llm-proxy, (c) through LiteLLM:

1. latency: open loop at --rate requests/s, interleaved rounds per target, time to the last byte of each
   streamed completion; added latency = percentile(target) - percentile(direct);
2. throughput: closed loop with --clients concurrent clients;
3. memory: --soak requests through llm-proxy, its RSS sampled as they go.

Writes JSON (--out) and prints a markdown table. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
MODEL = "bench-model"
BODY = {"model": MODEL, "stream": True, "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello."}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    name: str
    url: str
    key: str
    pid: int | None = None
    latencies: list[float] = field(default_factory=list)
    overheads: list[float] = field(default_factory=list)
    errors: int = 0
    failures: dict[str, int] = field(default_factory=dict)


class Processes:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path = REPO) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_http(url: str, timeout: float = 120.0, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def one(http: httpx.AsyncClient, target: Target, record: bool) -> None:
    start = time.perf_counter()
    try:
        async with http.stream("POST", f"{target.url}/chat/completions", json=BODY,
                               headers={"Authorization": f"Bearer {target.key}"}) as response:
            async for _ in response.aiter_raw():
                pass
            ok = response.status_code == 200
            overhead = response.headers.get("x-atlas-overhead-ms")
            failure = f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        ok, overhead, failure = False, None, type(exc).__name__
    if not record:
        return
    if ok:
        target.latencies.append((time.perf_counter() - start) * 1000)
        if overhead is not None:
            target.overheads.append(float(overhead))
    else:
        target.errors += 1
        target.failures[failure] = target.failures.get(failure, 0) + 1


async def open_loop(target: Target, rate: float, seconds: float, clients: int) -> None:
    """Requests start on a fixed schedule whatever the answers do (no coordinated omission)."""
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as http:
        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, target, record=True)))
        await asyncio.gather(*tasks)


async def closed_loop(target: Target, clients: int, seconds: float | None, total: int | None,
                      progress: Callable[[int], None] | None = None) -> tuple[int, float]:
    done = 0
    stop_at = time.perf_counter() + seconds if seconds else None

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal done
        while (stop_at is None or time.perf_counter() < stop_at) and (total is None or done < total):
            done += 1
            await one(http, target, record=False)
            if progress and done % 5000 == 0:
                progress(done)

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(worker(http) for _ in range(clients)))
    return done, time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start_backend(procs: Processes, name: str, model: str, api_key: str) -> str:
    port = free_port()
    procs.start(name, [sys.executable, "-m", "uvicorn", "--factory", "tests.proxy.fake_upstream:from_env",
                       "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                {**os.environ, "FAKE_MODELS": model, "FAKE_API_KEY": api_key})
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health")
    return url


def start_platform(procs: Processes, state: Path, backend: str, embed: str, api_key: str, redis_url: str,
                   redis_password: str) -> Target:
    portal_port, proxy_port = free_port(), free_port()
    recovery_token = secrets.token_urlsafe(32)
    env = {**os.environ, "ATLAS_METRICS_TOKEN": secrets.token_urlsafe(32),
           "ATLAS_PROXY_TOKEN": secrets.token_urlsafe(32), "ATLAS_RECOVERY_TOKEN": recovery_token,
           "ATLAS_LLAMA_API_KEY": api_key,
           # the bench user's own limits off: the key's (high) limits still run the limiter's script every request
           "ATLAS_USER_DEFAULT_RPM": "0", "ATLAS_USER_DEFAULT_TPM": "0", "ATLAS_USER_DEFAULT_CONCURRENCY": "0",
           "ATLAS_JWT_SECRET": secrets.token_urlsafe(32), "ATLAS_KEY_HASH_SECRET": secrets.token_urlsafe(32),
           "ATLAS_REDIS_URL": redis_url, "ATLAS_REDIS_PASSWORD": redis_password, "ATLAS_STATE_DIR": str(state),
           "ATLAS_LLAMA_URL": backend, "ATLAS_EMBED_URL": embed, "ATLAS_RAG_URL": backend,
           "ATLAS_PORTAL_URL": f"http://127.0.0.1:{portal_port}", "ATLAS_PORTAL_PORT": str(portal_port),
           "ATLAS_PROXY_PORT": str(proxy_port), "ATLAS_LOG_LEVEL": "WARNING"}
    procs.start("api-portal", [sys.executable, "-m", "atlas_portal"], env)
    proxy = procs.start("llm-proxy", [sys.executable, "-m", "atlas_proxy"], env)
    portal = f"http://127.0.0.1:{portal_port}"
    wait_http(f"{portal}/livez")
    wait_http(f"http://127.0.0.1:{proxy_port}/livez")
    boot = httpx.post(f"{portal}/internal/bootstrap", headers={"Authorization": f"Bearer {recovery_token}"}).json()
    login = httpx.post(f"{portal}/api/auth/login", json={"username": "admin", "password": boot["password"]}).json()
    # Limits stay on (the Lua script runs for every request) but high enough never to refuse.
    key = httpx.post(f"{portal}/api/keys", headers={"Authorization": f"Bearer {login['access_token']}"},
                     json={"name": "bench", "rate_limit": 1_000_000, "tokens_per_min": 1_000_000_000,
                           "max_concurrent": 10_000}).json()["key"]
    target = Target("llm-proxy", f"http://127.0.0.1:{proxy_port}/v1", key, pid=proxy.pid)
    deadline = time.monotonic() + 60
    while httpx.get(f"{target.url}/models", headers={"Authorization": f"Bearer {key}"}).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("llm-proxy never listed the bench model")
        time.sleep(0.3)
    return target


def start_litellm(procs: Processes, lab: Path, backend: str, api_key: str, redis_port: int,
                  redis_password: str) -> Target | None:
    """LiteLLM's proxy with a virtual key, PostgreSQL and Redis (benchmark/litellm/setup.sh prepares LAB)."""
    scripts = REPO / "benchmark" / "litellm"
    if not any(lab.glob(".ready-*")):
        print(f"LiteLLM is not set up in {lab} (run benchmark/litellm/setup.sh); measuring without it")
        return None
    port = free_port()
    env = {**os.environ, "LAB": str(lab), "LITELLM_PORT": str(port), "FAKE_BASE": f"{backend}/v1",
           "FAKE_KEY": api_key, "REDIS_PORT": str(redis_port), "REDIS_PASSWORD": redis_password, "BENCH_MODEL": MODEL}
    bash = shutil.which("bash") or "/bin/bash"
    proc = procs.start("litellm", [bash, str(scripts / "start.sh")], env, cwd=lab)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:  # /health/readiness answers 503 until the database is connected
        try:
            if httpx.get(f"{url}/health/readiness", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"LiteLLM did not start; see {procs.logs / 'litellm.log'}")
        time.sleep(0.5)
    key = subprocess.run([bash, str(scripts / "make-key.sh")], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    return Target("litellm", f"{url}/v1", key, pid=proc.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10.0,
                        help="requests/s in the latency phase (below every target's capacity on 2 cores)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per latency round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved latency rounds per target")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients")
    parser.add_argument("--soak", type=int, default=100_000, help="requests through llm-proxy for the memory check")
    parser.add_argument("--litellm-lab", type=Path, default=REPO / ".bench" / "litellm",
                        help="where benchmark/litellm/setup.sh installed LiteLLM")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "proxy.json")
    args = parser.parse_args()

    work = REPO / ".bench" / f"proxy-{int(time.time())}"
    (work / "logs").mkdir(parents=True)
    procs = Processes(work / "logs")
    api_key = secrets.token_urlsafe(32)
    try:
        redis_port, redis_password = free_port(), secrets.token_urlsafe(24)
        redis_server = shutil.which("redis-server") or "redis-server"
        procs.start("redis", [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--requirepass", redis_password], dict(os.environ))
        backend = start_backend(procs, "backend", MODEL, api_key)
        embed = start_backend(procs, "embed-backend", "bench-embed", api_key)
        direct = Target("direct", f"{backend}/v1", api_key)
        atlas = start_platform(procs, work / "state", backend, embed, api_key, f"redis://127.0.0.1:{redis_port}/0",
                               redis_password)
        litellm = start_litellm(procs, args.litellm_lab, backend, api_key, redis_port, redis_password)
        targets = [t for t in (direct, atlas, litellm) if t is not None]

        print(f"warming up {', '.join(t.name for t in targets)}")
        for target in targets:
            asyncio.run(closed_loop(target, args.clients, seconds=3, total=None))
        for round_number in range(args.rounds):
            for target in targets:
                print(f"latency round {round_number + 1}/{args.rounds}: {target.name} at {args.rate:g} req/s")
                asyncio.run(open_loop(target, args.rate, args.seconds, args.clients))
        throughput = {}
        for target in targets:
            done, elapsed = asyncio.run(closed_loop(target, args.clients, seconds=10, total=None))
            throughput[target.name] = done / elapsed
            print(f"throughput {target.name}: {throughput[target.name]:.0f} req/s")

        memory: list[tuple[int, float]] = [(0, rss_mb(atlas.pid or 0))]

        def sample(done: int) -> None:
            memory.append((done, rss_mb(atlas.pid or 0)))
            if done % 20_000 == 0:
                print(f"soak: {done} requests, llm-proxy RSS {memory[-1][1]:.1f} MB")

        soak_done, soak_s = asyncio.run(closed_loop(atlas, args.clients, seconds=None, total=args.soak,
                                                    progress=sample))
        memory.append((soak_done, rss_mb(atlas.pid or 0)))
    finally:
        procs.stop()

    base50, base99 = pct(direct.latencies, 50), pct(direct.latencies, 99)
    rows = {}
    for target in targets:
        rows[target.name] = {
            "requests": len(target.latencies), "errors": target.errors, "failures": target.failures,
            "p50_ms": pct(target.latencies, 50), "p99_ms": pct(target.latencies, 99),
            "added_p50_ms": pct(target.latencies, 50) - base50, "added_p99_ms": pct(target.latencies, 99) - base99,
            "throughput_rps": throughput[target.name],
        }
    rows["llm-proxy"]["self_reported_overhead_p50_ms"] = pct(atlas.overheads, 50)
    rows["llm-proxy"]["self_reported_overhead_p99_ms"] = pct(atlas.overheads, 99)
    after_warmup = [m for n, m in memory if n >= min(10_000, args.soak // 10)]
    result = {
        "benchmark": "proxy", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load": {"rate_rps": args.rate, "round_s": args.seconds, "rounds": args.rounds, "clients": args.clients,
                 "request": "streamed chat completion, 4 pieces + [DONE], from a fake backend"},
        "targets": rows,
        "ratio_added_p50_litellm_over_atlas": (rows["litellm"]["added_p50_ms"] / rows["llm-proxy"]["added_p50_ms"]
                                               if "litellm" in rows and rows["llm-proxy"]["added_p50_ms"] > 0
                                               else None),
        "soak": {"requests": soak_done, "seconds": soak_s, "rss_mb": memory,
                 "rss_growth_after_warmup_mb": (after_warmup[-1] - after_warmup[0]) if after_warmup else None,
                 "rss_median_mb": statistics.median(m for _, m in memory)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}\n")
    print("| target | p50 ms | p99 ms | added p50 ms | added p99 ms | req/s (64 clients) | errors |")
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['added_p50_ms']:.2f} | "
              f"{row['added_p99_ms']:.2f} | {row['throughput_rps']:.0f} | {row['errors']} |")
    print(f"\nllm-proxy RSS over {soak_done} requests: {json.dumps(result['soak']['rss_growth_after_warmup_mb'])} MB "
          "growth after warm-up")


if __name__ == "__main__":
    main()
