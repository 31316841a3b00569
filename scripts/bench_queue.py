"""make bench-queue: the durable task queue's own cost, side by side with RQ on the same Redis.

For each worker count (1, 2, 4 by default), and for each system in turn (ATLAS's queue with its production
Worker class, then RQ's SimpleWorker, which like ours runs jobs in its own process without forking), it:
starts that many worker processes, submits N tasks whose handler does nothing, and waits until all are done.
Reported per run: end-to-end throughput (N / (last finish - first submission)), queue latency (submitted ->
started) and end-to-end latency (submitted -> finished) at p50 and p99 from each task's own timestamps, the
submission rate, and the workers' CPU time per task (user + system, from /proc), which is the worker overhead.

The Redis is started here with atlas up's settings (AOF with fsync every second, noeviction), so both systems pay
for the same durability. JSON to --out; the table in docs/benchmarks.md comes from it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis as AsyncRedis

from atlas_cli.plan import redis_binary
from atlas_core.queue import TaskQueue, metrics_key, record_key
from atlas_worker.loop import TaskContext, TaskOutcome
from atlas_worker.worker import Worker, WorkerConfig

SUBMIT_IN_FLIGHT = 64


def trivial(x: int) -> int:
    """RQ's job: nothing (RQ imports it as ``__main__.trivial`` in its worker, which runs this file)."""
    return x


async def nothing(ctx: TaskContext) -> TaskOutcome:
    """ATLAS's handler: nothing."""
    return TaskOutcome("succeeded", "SUCCESS", "done", {"n": ctx.spec.get("n")}, attempts=1)


# -- worker processes -------------------------------------------------------------------------------------------

def atlas_worker(url: str, password: str, concurrency: int) -> None:
    async def main() -> None:
        client = AsyncRedis.from_url(url, password=password)
        worker = Worker(TaskQueue(client), nothing, WorkerConfig(concurrency=concurrency, block_ms=200))
        await worker.queue.ensure_groups()
        await client.set(f"bench:ready:{os.getpid()}", 1)
        await worker.run()

    asyncio.run(main())


def rq_worker(url: str, password: str) -> None:
    from rq import Queue, SimpleWorker

    connection = redis.Redis.from_url(url, password=password)
    connection.set(f"bench:ready:{os.getpid()}", 1)
    SimpleWorker([Queue("bench", connection=connection)], connection=connection).work(logging_level="WARNING")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_workers(system: str, n: int, url: str, password: str, concurrency: int) -> list[subprocess.Popen[bytes]]:
    args = [sys.executable, __file__, "--role", f"{system}-worker", "--redis-url", url, "--concurrency",
            str(concurrency)]
    env = os.environ | {"BENCH_REDIS_PASSWORD": password}
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL) for _ in range(n)]
    client = redis.Redis.from_url(url, password=password)
    deadline = time.monotonic() + 60
    while sum(client.exists(f"bench:ready:{p.pid}") for p in procs) < n:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"{system} workers did not start")
        time.sleep(0.05)
    client.close()
    return procs


# -- one run ----------------------------------------------------------------------------------------------------

async def submit_atlas(client: AsyncRedis, n: int, rate: float) -> list[str]:
    """All at once (``rate`` 0: a burst, SUBMIT_IN_FLIGHT at a time), or one every 1/rate seconds."""
    queue = TaskQueue(client, max_queued=n + 1)
    if rate:
        ids, start = [], time.monotonic()
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            ids.append(await queue.submit({"n": i}, owner="bench", priority="p1", deadline_s=3600, max_attempts=1))
        return ids
    slots = asyncio.Semaphore(SUBMIT_IN_FLIGHT)

    async def one(i: int) -> str:
        async with slots:
            return await queue.submit({"n": i}, owner="bench", priority="p1", deadline_s=3600, max_attempts=1)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def atlas_times(client: redis.Redis, ids: list[str]) -> list[tuple[float, float, float]]:
    pipe = client.pipeline(transaction=False)
    for task_id in ids:
        pipe.hmget(record_key(task_id), "submitted_at", "started_at", "finished_at", "status")
    rows = pipe.execute()
    assert all(r[3] == b"succeeded" for r in rows), "a task did not succeed"
    return [(float(a), float(b), float(c)) for a, b, c, _ in rows]


def run_atlas(url: str, password: str, n: int, rate: float) -> tuple[float, float, list[tuple[float, float, float]]]:
    async def submit() -> tuple[float, float, list[str]]:
        client = AsyncRedis.from_url(url, password=password)
        try:
            began = time.time()
            ids = await submit_atlas(client, n, rate)
            return began, time.time(), ids
        finally:
            await client.aclose()

    began, submitted, ids = asyncio.run(submit())
    client = redis.Redis.from_url(url, password=password)
    wait_for(lambda: int(client.hget(metrics_key(), "succeeded") or 0) >= n)
    times = atlas_times(client, ids)
    client.close()
    return began, submitted, times


def run_rq(url: str, password: str, n: int, rate: float) -> tuple[float, float, list[tuple[float, float, float]]]:
    from rq import Queue
    from rq.registry import FinishedJobRegistry

    client = redis.Redis.from_url(url, password=password)
    queue = Queue("bench", connection=client)
    began = time.time()
    jobs = []
    if rate:
        start = time.monotonic()
        for i in range(n):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            jobs += queue.enqueue_many([Queue.prepare_data(trivial, (i,), result_ttl=3600)])
    for start in range(0, 0 if rate else n, 500):  # a burst in RQ's own batches: one pipeline per 500 jobs
        jobs += queue.enqueue_many([Queue.prepare_data(trivial, (i,), result_ttl=3600)
                                    for i in range(start, min(n, start + 500))])
    submitted = time.time()
    registry = FinishedJobRegistry(queue=queue)
    wait_for(lambda: registry.count >= n)
    pipe = client.pipeline(transaction=False)
    for job in jobs:
        pipe.hmget(job.key, "enqueued_at", "started_at", "ended_at")
    times = [tuple(iso(x) for x in row) for row in pipe.execute()]
    client.close()
    return began, submitted, times  # type: ignore[return-value]


def iso(value: bytes) -> float:
    return datetime.fromisoformat(value.decode().replace("Z", "+00:00")).replace(tzinfo=UTC).timestamp()


def wait_for(check: Any, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the run did not finish")
        time.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(system: str, workers: int, url: str, password: str, n: int, concurrency: int, rate: float = 0.0
            ) -> dict[str, Any]:
    client = redis.Redis.from_url(url, password=password)
    client.flushdb()
    client.close()
    procs = start_workers(system, workers, url, password, concurrency)
    cpu_before = sum(cpu_seconds(p.pid) for p in procs)
    try:
        began, submitted, times = (run_atlas if system == "atlas" else run_rq)(url, password, n, rate)
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
    finally:
        for p in procs:
            p.kill()
            p.wait()
    last = max(t[2] for t in times)
    queue_ms = [(t[1] - t[0]) * 1000 for t in times]
    total_ms = [(t[2] - t[0]) * 1000 for t in times]
    row = {
        "system": system, "load": f"paced {rate:g}/s" if rate else "burst", "workers": workers,
        "concurrency": concurrency if system == "atlas" else 1, "tasks": n,
        "throughput_per_s": round(n / (last - began), 1),
        "submit_per_s": round(n / (submitted - began), 1),
        "queue_latency_ms": {"p50": round(percentile(queue_ms, 0.5), 1), "p99": round(percentile(queue_ms, 0.99), 1)},
        "end_to_end_ms": {"p50": round(percentile(total_ms, 0.5), 1), "p99": round(percentile(total_ms, 0.99), 1),
                          "mean": round(statistics.fmean(total_ms), 1)},
        "worker_cpu_ms_per_task": round(cpu * 1000 / n, 3),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2,4", help="worker process counts, comma-separated")
    parser.add_argument("--concurrency", type=int, default=16, help="tasks one ATLAS worker runs at once")
    parser.add_argument("--paced-rate", type=float, default=100.0,
                        help="submissions per second of the paced runs (latency without a backlog); 0 skips them")
    parser.add_argument("--paced-tasks", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench-results/queue.json"))
    parser.add_argument("--role", choices=["bench", "atlas-worker", "rq-worker"], default="bench")
    parser.add_argument("--redis-url", default="")
    args = parser.parse_args()
    if args.role == "atlas-worker":
        atlas_worker(args.redis_url, os.environ["BENCH_REDIS_PASSWORD"], args.concurrency)
        return
    if args.role == "rq-worker":
        rq_worker(args.redis_url, os.environ["BENCH_REDIS_PASSWORD"])
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_sandbox import free_port  # here, not at the top: the worker processes need none of it

    password = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        server = subprocess.Popen(
            [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", data, "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
             "--requirepass", password], stdout=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            wait_for(lambda: ping(url, password), 10)
            rows = []
            for workers in (int(w) for w in args.workers.split(",")):
                for system in ("atlas", "rq"):  # side by side, so both see the same machine state
                    rows.append(measure(system, workers, url, password, args.tasks, args.concurrency))
                    if args.paced_rate:
                        rows.append(measure(system, workers, url, password, args.paced_tasks, args.concurrency,
                                            args.paced_rate))
        finally:
            server.terminate()
            server.wait()
    version = subprocess.run([redis_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    from importlib.metadata import version as package_version

    report = {"benchmark": "queue", "tasks": args.tasks, "cpus": os.cpu_count(), "python": platform.python_version(),
              "redis": version, "rq": package_version("rq"), "redis_py": package_version("redis"),
              "redis_config": "appendonly yes, appendfsync everysec, maxmemory-policy noeviction", "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def ping(url: str, password: str) -> bool:
    try:
        with redis.Redis.from_url(url, password=password) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False


if __name__ == "__main__":
    main()
