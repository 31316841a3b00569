"""make bench-dashboard: the dashboard's page with 24 h (and 7 days) of synthetic history, and the collector's cost.

1. History: a fresh Redis gets 24 h of one-minute steps and 7 days of the coarser tiers, each step a realistic
   scrape's worth of increases (3 models x 3 routes of latency histograms, tokens, rejections, queue, solves,
   sandbox verdicts), written through the dashboard's own store.
2. Page: the real portal and dashboard on loopback; headless Chromium signs in and loads the page; we record the
   time from navigation to the first complete render (every panel drawn, ``body[data-rendered]``) for each window,
   and the JSON API's median time per window.
3. Collector: its CPU time per collection against seven targets serving /metrics texts the size of the real
   services' under load, measured in a process of its own; its share of one core follows from the interval.

    .venv/bin/python scripts/bench_dashboard.py --out bench-results/dashboard.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from prometheus_client import generate_latest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from atlas_core.metrics import ServiceMetrics  # noqa: E402
from atlas_core.settings import load_settings  # noqa: E402
from atlas_dashboard import series, store  # noqa: E402
from atlas_dashboard.app import create_app as dashboard_app  # noqa: E402
from atlas_dashboard.panels import families  # noqa: E402
from atlas_dashboard.settings import Settings as DashboardSettings  # noqa: E402
from atlas_portal.app import create_app as portal_app  # noqa: E402
from atlas_portal.settings import Settings as PortalSettings  # noqa: E402
from atlas_proxy.stats import ProxyMetrics  # noqa: E402
from tests.conftest import RECOVERY_TOKEN, ServerThread, free_port  # noqa: E402

MODELS = ("qwen3-14b", "atlas", "nomic-embed")
ROUTES = ("raw", "atlas", "tasks")
TOKEN = secrets.token_urlsafe(32)


def busy_service(seed: int) -> str:
    return generate_latest(BusyService(seed).registry).decode()


class BusyService:
    """A process whose /metrics text is like a busy proxy's: HTTP metrics on a dozen routes and the proxy's own
    histograms on every model and route; each ``traffic()`` adds more, so every scrape has something new."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)  # noqa: S311 (synthetic traffic, not a secret)
        self.base = ServiceMetrics("llm-proxy")
        self.proxy = ProxyMetrics(self.base.registry)
        self.registry = self.base.registry
        self.traffic(50)

    def traffic(self, n: int) -> None:
        rnd, base, proxy = self.rnd, self.base, self.proxy
        for route in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/solve", "/v1/tasks",
                  "/v1/tasks/{task_id}", "/v1/tasks/{task_id}/events", "/v1/models", "/livez", "/readyz",
                      "/metrics", "/v1/queue/stats"):
            for code in ("200", "429", "503"):
                base.requests.labels("llm-proxy", "POST", route, code).inc(rnd.randint(1, 1000))
            for _ in range(n // 2):
                base.latency.labels("llm-proxy", "POST", route).observe(rnd.expovariate(5))
        for model in MODELS:
            for route in ROUTES:
                for _ in range(n):
                    proxy.finished(model, route, rnd.choice((200, 200, 200, 429, 503)), rnd.expovariate(0.5))
                    proxy.ttft.labels(model, route).observe(rnd.expovariate(4))
                    proxy.itl.labels(model, route).observe(rnd.expovariate(40))
        for reason in ("rpm", "tpm", "concurrency", "auth"):
            proxy.rejected(reason, "key")


def step_fields(rnd: random.Random, scale: float) -> dict[str, float]:
    """One step's increases and gauges, as the collector would write them (``scale``: steps it stands for)."""
    fields: dict[str, float] = {}
    text = busy_service(rnd.randint(0, 10**6))
    scrape = series.parse(text, families(), 2000)
    for key, value in scrape.cumulative.items():
        fields[key] = value * scale / 50
    for status in ("passed", "failed"):
        fields[series.key_of("atlas_solves_total", {"status": status, "stopped": "done",
                                                    "verified": str(status == "passed").lower()})] = 3 * scale
    for verdict in ("passed", "failed", "timeout"):
        fields[series.key_of("atlas_sandbox_verdicts_total", {"endpoint": "judge", "language": "python",
                                                              "verdict": verdict})] = 5 * scale
    for priority in ("p0", "p1", "p2"):
        fields[series.key_of("atlas_queue_depth", {"priority": priority})] = rnd.randint(0, 20)
    fields[series.key_of("atlas_queue_workers", {})] = 2
    return fields


async def fill_history(redis_url: str, password: str, now: float) -> dict[str, int]:
    redis = aioredis.Redis.from_url(redis_url, password=password)
    rnd = random.Random(7)  # noqa: S311 (synthetic history)
    written = {}
    templates = [step_fields(rnd, 1) for _ in range(20)]  # parsing 1,440 texts would only slow the set-up
    for tier, count in (("1m", 1440), ("10m", 1008), ("1h", 168)):
        t = store.TIER[tier]
        starts = store.steps(t, count * t.step_s, now)
        scale = t.step_s / 60
        async with redis.pipeline(transaction=False) as pipe:
            for i, start in enumerate(starts):
                fields = {k: v * scale for k, v in templates[i % len(templates)].items()}
                pipe.set(store.step_key(t, start), json.dumps(fields), ex=t.keep_s)
            await pipe.execute()
        written[tier] = len(starts)
    info = await redis.info("memory")
    written["redis_used_mb"] = round(int(info["used_memory"]) / 2**20, 1)
    written["fields_per_step"] = len(templates[0])
    await redis.aclose()
    return written


def page_times(dashboard: str, password: str, windows: list[str], repeats: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{dashboard}/login")
        page.fill("#login-name", "admin")
        page.fill("#login-password", password)
        page.click("#login-form button[type=submit]")
        page.wait_for_url(f"{dashboard}/")
        for window in windows:
            times = []
            for _ in range(repeats):
                # The window is chosen before the page loads, so the first render is of that window.
                page.add_init_script(f"window.ATLAS_WINDOW = '{window}';")
                page.goto(f"{dashboard}/")
                page.wait_for_selector("body[data-rendered]", timeout=30_000)
                times.append(float(page.evaluate("Number(document.body.dataset.rendered)")))
            out[window] = {"first_render_ms_median": round(statistics.median(times), 1),
                           "first_render_ms_max": round(max(times), 1), "runs": repeats}
        browser.close()
    return out


def api_times(dashboard: str, password: str, windows: list[str], repeats: int) -> dict[str, Any]:
    client = httpx.Client(base_url=dashboard, timeout=30)
    client.get("/login")
    csrf = client.get("/api/login/csrf").json()["csrf"]
    client.post("/api/login", json={"username": "admin", "password": password}, headers={"X-CSRF-Token": csrf})
    out = {}
    for window in windows:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            answer = client.get("/api/panels", params={"window": window})
            answer.raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
        out[window] = {"panels_api_ms_median": round(statistics.median(times), 1), "bytes": len(answer.content)}
    return out


COLLECTOR = """
import asyncio, json, sys, time
import httpx, redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from atlas_core.settings import load_settings
from atlas_dashboard.collector import Collector
from atlas_dashboard.panels import families
from atlas_dashboard.settings import Settings
env, runs = json.loads(sys.argv[1]), int(sys.argv[2])
async def main():
    settings = load_settings(Settings, environ=env)
    redis = aioredis.Redis.from_url(env["ATLAS_REDIS_URL"], password=env["ATLAS_REDIS_PASSWORD"])
    async with httpx.AsyncClient() as http:
        c = Collector(redis, http, settings, families(), CollectorRegistry())
        await c.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(runs):
            await c.collect()
        print(json.dumps({"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}))
    await redis.aclose()
asyncio.run(main())
"""


def target_app(service: BusyService) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    @app.get("/metrics", response_class=PlainTextResponse)
    def scrape() -> str:
        service.traffic(2)  # new traffic between two scrapes: every collection writes increases
        return generate_latest(service.registry).decode()

    @app.get("/readyz")
    def ready() -> dict[str, Any]:
        return {"status": "ready", "checks": {"redis": "ok"}}

    return app


def collector_cost(env: dict[str, str], runs: int) -> dict[str, Any]:
    targets = []
    apps = []
    for i in range(7):
        apps.append(ServerThread(target_app(BusyService(i))))
    for app_thread in apps:
        app_thread.__enter__()
        targets.append(f"svc-{len(targets)}={app_thread.url}")
    try:
        size = len(busy_service(0))
        collector_env = env | {"ATLAS_DASHBOARD_TARGETS": ",".join(targets)}
        done = subprocess.run([sys.executable, "-c", COLLECTOR, json.dumps(collector_env), str(runs)],
                              capture_output=True, text=True, check=True, cwd=REPO)
        measured = json.loads(done.stdout)
    finally:
        for app_thread in apps:
            app_thread.__exit__()
    per = measured["cpu_s"] / runs
    return {"targets": 7, "metrics_text_bytes_per_target": size, "collections": runs,
            "cpu_ms_per_collection": round(per * 1000, 2),
            "wall_ms_per_collection": round(measured["wall_s"] / runs * 1000, 2),
            "share_of_one_core_at_10s": round(per / 10 * 100, 3),
            "share_of_one_core_at_1s": round(per / 1 * 100, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-results/dashboard.json"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--collections", type=int, default=30)
    args = parser.parse_args()
    from atlas_cli.plan import redis_binary

    with tempfile.TemporaryDirectory() as tmp:
        port, password = free_port(), secrets.token_urlsafe(24)
        server = subprocess.Popen([redis_binary(), "--port", str(port), "--requirepass", password, "--save", "",
                                   "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            env = {"ATLAS_METRICS_TOKEN": TOKEN, "ATLAS_PROXY_TOKEN": secrets.token_urlsafe(32),
                   "ATLAS_RECOVERY_TOKEN": RECOVERY_TOKEN, "ATLAS_LLAMA_API_KEY": secrets.token_urlsafe(32),
                   "ATLAS_JWT_SECRET": secrets.token_urlsafe(32), "ATLAS_KEY_HASH_SECRET": secrets.token_urlsafe(32),
                   "ATLAS_REDIS_URL": f"redis://127.0.0.1:{port}/0", "ATLAS_REDIS_PASSWORD": password,
                   "ATLAS_STATE_DIR": tmp, "ATLAS_DATABASE_URL": f"sqlite:///{tmp}/portal.db",
                   "ATLAS_PUBLIC_API_URL": "http://127.0.0.1:8000/v1"}
            history = asyncio.run(fill_history(env["ATLAS_REDIS_URL"], password, time.time()))
            with ServerThread(portal_app(load_settings(PortalSettings, environ=env))) as portal:
                boot = httpx.post(f"{portal.url}/internal/bootstrap",
                                  headers={"Authorization": f"Bearer {RECOVERY_TOKEN}"}).json()
                settings = load_settings(DashboardSettings, environ=env | {"ATLAS_PORTAL_URL": portal.url})
                with ServerThread(dashboard_app(settings, collect=False)) as dashboard:
                    windows = ["1h", "24h", "7d"]
                    api = api_times(dashboard.url, boot["password"], windows, args.repeats * 4)
                    page = page_times(dashboard.url, boot["password"], windows, args.repeats)
            collector = collector_cost(env, args.collections)
        finally:
            server.terminate()
            server.wait()
    result = {"benchmark": "dashboard", "history": history, "api": api, "page": page, "collector": collector,
              "targets": {"first_render_ms": 1000, "collector_share_of_one_core_pct": 1.0}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
