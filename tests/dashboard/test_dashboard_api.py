"""The dashboard's sign-in (the portal's accounts, CSRF-safe, HttpOnly SameSite=Strict cookie), who sees what, and
its collector: real Redis, the real portal, and a target whose /metrics the test moves."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from redis.asyncio import Redis

from atlas_core.schemas import USAGE_STREAM
from atlas_core.settings import load_settings
from atlas_dashboard import collector, store, views
from atlas_dashboard.auth import Viewer
from atlas_dashboard.collector import Collector
from atlas_dashboard.collector import health as collector_health
from atlas_dashboard.panels import families
from atlas_dashboard.settings import Settings
from tests.conftest import METRICS_TOKEN, RedisServer, ServerThread
from tests.dashboard.conftest import Site, sign_in, wait_for_usage


def test_signed_out_visitors_go_to_sign_in_and_the_api_refuses_them(site: Site) -> None:
    page = httpx.get(f"{site.dashboard}/")
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert httpx.get(f"{site.dashboard}/api/panels").status_code == 401
    login = httpx.get(f"{site.dashboard}/login")
    assert "default-src 'self'" in login.headers["content-security-policy"]


def test_sign_in_needs_the_forms_token_and_the_right_password(site: Site) -> None:
    with httpx.Client(base_url=site.dashboard) as client:
        check_sign_in(client, site)


def check_sign_in(client: httpx.Client, site: Site) -> None:
    client.get("/login")
    body = {"username": "admin", "password": site.admin_password}
    assert client.post("/api/login", json=body).status_code == 403  # no CSRF token: a cross-site form
    assert client.post("/api/login", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    csrf = client.get("/api/login/csrf").json()["csrf"]
    wrong = client.post("/api/login", json=body | {"password": "nope"}, headers={"X-CSRF-Token": csrf})
    assert wrong.status_code == 401 and "wrong username/email or password" in wrong.json()["error"]["message"]
    assert client.post("/api/login", json={"username": "admin"}, headers={"X-CSRF-Token": csrf}).status_code == 400
    ok = client.post("/api/login", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 204
    cookie = ok.headers["set-cookie"]
    assert "atlas_dashboard=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict",
                                                                                                        "strict")
    day = client.get("/api/panels", params={"window": "24h", "step": "1m"})
    assert day.status_code == 200 and len(day.json()["times"]) == 1440 and day.json()["step_s"] == 60
    week = client.get("/api/panels", params={"window": "7d", "step": "1m"})
    assert week.status_code == 400 and "kept 25 h" in week.json()["error"]["message"]
    assert client.get("/api/panels", params={"window": "2d"}).status_code == 400
    me = client.get("/api/me").json()
    assert me["username"] == "admin" and me["is_admin"] and "ttft" in {p["id"] for p in me["panels"]}
    assert "token" not in me  # the portal's token never reaches the browser


def test_sign_out_needs_the_sessions_token_and_ends_it(site: Site) -> None:
    with sign_in(site.dashboard, "admin", site.admin_password) as client:
        assert client.post("/api/logout").status_code == 403
        csrf = client.get("/api/me").json()["csrf"]
        assert client.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert client.get("/api/me").status_code == 401


def test_a_user_sees_only_their_own_usage_and_no_platform_panels(site: Site, redis_server: RedisServer) -> None:
    bob = site.user("bob")
    bob_key = httpx.post(f"{site.portal}/api/keys", headers=bob, json={"name": "bobs-key"}).json()
    admin_key = httpx.post(f"{site.portal}/api/keys", headers=site.admin, json={"name": "admins-key"}).json()
    with redis_server.client() as client:
        for key, tokens in ((bob_key, 10), (admin_key, 100)):
            client.xadd(USAGE_STREAM, {"ts": time.time(), "key_id": key["id"], "user_id": key["user_id"],
                                       "model": "atlas", "status": 200, "prompt_tokens": tokens,
                                       "completion_tokens": 1, "latency_ms": 5})
    wait_for_usage(site, site.admin, 2)

    with sign_in(site.dashboard, "bob", "a long enough password") as as_bob:
        assert {p["id"] for p in as_bob.get("/api/me").json()["panels"]} == {"usage", "recent"}
        rows = as_bob.get("/api/usage").json()["rows"]
        assert [(r["key_id"], r["today_tokens"], r["week_requests"]) for r in rows] == [(bob_key["id"], 11, 1)]
        panels = as_bob.get("/api/panels").json()
        assert panels["health"] is None and all(p["kind"] in ("usage", "recent") for p in panels["panels"])

    with sign_in(site.dashboard, "admin", site.admin_password) as as_admin:
        seen = {r["key_id"]: r["week_tokens"] for r in as_admin.get("/api/usage").json()["rows"]}
    assert seen == {bob_key["id"]: 11, admin_key["id"]: 101}


def test_recent_tasks_show_a_prompt_only_to_its_owner(site: Site, redis_server: RedisServer) -> None:
    bob = site.user("carol")
    bob_id = httpx.get(f"{site.portal}/api/auth/me", headers=bob).json()["id"]
    with redis_server.client() as client:
        client.hset("atlas:task:t1", mapping={"id": "t1", "owner": str(bob_id), "status": "succeeded",
                                                "priority": "p1", "submitted_at": repr(time.time()),
                                                "spec": '{"prompt": "carol\'s secret problem"}', "deliveries": "1"})
        client.zadd(f"atlas:tasks:owner:{bob_id}", {"t1": time.time()})
        client.zadd("atlas:tasks:recent", {"t1": time.time()})
        client.xadd("atlas:solves", {"ts": time.time(), "id": "s1", "user_id": str(bob_id), "status": "passed",
                                     "verified": "1", "k": "3", "prompt_tokens": "5", "completion_tokens": "6",
                                     "total_s": "1.5", "source": "solve"})
    with sign_in(site.dashboard, "carol", "a long enough password") as client:
        mine = client.get("/api/recent").json()
    assert mine["tasks"][0]["prompt"] == "carol's secret problem"
    assert mine["solves"][0]["tokens"] == 11 and mine["solves"][0]["verified"] is True
    with sign_in(site.dashboard, "admin", site.admin_password) as client:
        admins = client.get("/api/recent").json()
    assert admins["tasks"][0]["id"] == "t1" and admins["tasks"][0]["prompt"] == ""  # not the admin's prompt


def target_app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        assert request.headers["authorization"] == f"Bearer {METRICS_TOKEN}"
        return Response(generate_latest(registry), media_type="text/plain")

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response('{"checks": {"redis": "ok", "llama-server": "ConnectError: refused"}}', status_code=503)

    return app


def test_the_collector_records_what_moved_and_one_replica_collects(service_env: dict[str, str],
                                                                      redis_server: RedisServer) -> None:
    registry = CollectorRegistry()
    requests = Counter("atlas_proxy_requests_total", "", ["model", "route", "code"], registry=registry)
    depth = Gauge("atlas_queue_depth", "", ["priority"], registry=registry)
    ttft = Histogram("atlas_proxy_ttft_seconds", "", ["model", "route"], registry=registry, buckets=(0.1, 1.0))
    requests.labels("m", "raw", "2xx").inc(10)  # before the first scrape: not counted (no baseline)
    with ServerThread(target_app(registry)) as target:
        settings = load_settings(Settings, environ=service_env | {
            "ATLAS_DASHBOARD_TARGETS": f"llm-proxy={target.url}",
            "ATLAS_DASHBOARD_PROBES": f"llama-server={target.url}/missing"})

        async def scenario() -> None:
            redis = Redis.from_url(redis_server.url, password=redis_server.password)
            async with httpx.AsyncClient() as http:
                registry = CollectorRegistry()
                first = Collector(redis, http, settings, families(), registry)
                second = Collector(redis, http, settings, families(), CollectorRegistry())
                now = time.time()
                assert await first.collect(now) and not await second.collect(now)
                requests.labels("m", "raw", "2xx").inc(3)
                depth.labels("p0").set(2)
                ttft.labels("m", "raw").observe(0.05)
                assert await first.collect(now + 1)
                admin = Viewer(1, "admin", True, "", "")
                data = await views.panels(redis, admin, "15m", now + 2)
                shown = {p["id"]: p for p in data["panels"]}
                assert shown["requests"]["summary"][0]["total"] == 3
                assert shown["queue-depth"]["summary"] == [{"name": "p0", "now": 2.0}]
                assert shown["ttft"]["summary"][0]["count"] == 1
                health = {s["name"]: s for s in (await collector.health(redis) or {})["services"]}
                assert health["llm-proxy"]["ready"] is False and "llama-server: ConnectError" in \
                    health["llm-proxy"]["reason"]
                assert health["llama-server"]["ready"] is False
                scrapes = {(t, r): registry.get_sample_value("atlas_dashboard_scrapes_total",
                                                             {"target": t, "result": r})
                           for t in ("llm-proxy", "llama-server") for r in ("ok", "failed")}
                assert scrapes == {("llm-proxy", "ok"): 2, ("llm-proxy", "failed"): None,
                                   ("llama-server", "ok"): 2, ("llama-server", "failed"): None}
                assert registry.get_sample_value("atlas_dashboard_collect_seconds_count") == 2
                step = int(now) // 60 * 60
                assert await redis.ttl(store.step_key(store.TIER["1m"], step)) > 24 * 3600
                await redis.aclose()

        asyncio.run(scenario())


@pytest.mark.parametrize("value", ["proxy", "proxy=ftp://x", "UPPER=http://x", "a=http://", "a=http://[::1",
                                   "a=http://x,a=http://y", ",".join(f"a{i}=http://x" for i in range(65))])
def test_bad_targets_are_refused_with_the_reason(service_env: dict[str, str], value: str) -> None:
    from atlas_core.settings import SettingsError

    with pytest.raises(SettingsError, match="ATLAS_DASHBOARD_TARGETS"):
        load_settings(Settings, environ=service_env | {"ATLAS_DASHBOARD_TARGETS": value})


def test_the_portal_is_asked_again_who_a_viewer_is(site: Site, redis_server: RedisServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A demoted admin loses the admin's view and a deactivated user the dashboard, without signing out; the
    portal's token is sealed in Redis, never stored as it is."""
    import atlas_dashboard.deps

    monkeypatch.setattr(atlas_dashboard.deps, "RECHECK_S", 0.0)
    created = httpx.post(f"{site.portal}/api/auth/register", headers=site.admin, json={
        "username": "erin", "email": "erin@example.org", "password": "erin's long password", "is_admin": True})
    assert created.status_code == 201, created.text
    with sign_in(site.dashboard, "erin", "erin's long password") as client:
        assert client.get("/api/me").json()["is_admin"] is True
        with redis_server.client() as raw:
            stored = [json.loads(raw.get(k) or "{}") for k in raw.scan_iter("atlas:dash:session:*")]
        assert stored and all(not s["token"].startswith("eyJ") and len(s["token"]) > 40 for s in stored)

        patch = httpx.patch(f"{site.portal}/api/users/{created.json()['id']}", headers=site.admin,
                            json={"is_admin": False})
        assert patch.status_code == 200, patch.text
        me = client.get("/api/me").json()
        assert me["is_admin"] is False and {p["id"] for p in me["panels"]} == {"usage", "recent"}

        httpx.patch(f"{site.portal}/api/users/{created.json()['id']}", headers=site.admin, json={"is_active": False})
        assert client.get("/api/me").status_code == 401
        with redis_server.client() as raw:
            assert list(raw.scan_iter("atlas:dash:session:*")) == []  # the session ended there


def test_a_step_must_fit_the_window(site: Site) -> None:
    with sign_in(site.dashboard, "admin", site.admin_password) as client:
        answer = client.get("/api/panels", params={"window": "15m", "step": "1h"})
        assert answer.status_code == 400 and "too coarse" in answer.json()["error"]["message"]


def test_nothing_is_written_while_redis_is_past_its_memory_alarm(service_env: dict[str, str],
                                                                 redis_server: RedisServer) -> None:
    registry = CollectorRegistry()
    requests = Counter("atlas_proxy_requests_total", "", ["model", "route", "code"], registry=registry)
    with ServerThread(target_app(registry)) as target:
        settings = load_settings(Settings, environ=service_env | {
            "ATLAS_DASHBOARD_TARGETS": f"llm-proxy={target.url}", "ATLAS_REDIS_MEMORY_ALARM": "0.000001"})

        async def scenario() -> None:
            redis = Redis.from_url(redis_server.url, password=redis_server.password)
            await redis.config_set("maxmemory", str(1 << 30))
            try:
                async with httpx.AsyncClient() as http:
                    own = CollectorRegistry()
                    collector = Collector(redis, http, settings, families(), own)
                    await collector.collect()
                    requests.labels("m", "raw", "2xx").inc(5)
                    assert await collector.collect()
                    assert own.get_sample_value("atlas_dashboard_history_skipped_total", {"reason": "redis_full"}) == 2
                    assert [k async for k in redis.scan_iter("atlas:dash:1m:*")] == []
                    assert await collector_health(redis) is not None  # health is still kept: it is one key
            finally:
                await redis.config_set("maxmemory", "0")
                await redis.aclose()

        asyncio.run(scenario())


def test_a_portal_sign_out_ends_the_dashboards_session_too(site: Site) -> None:
    """The portal revokes the token (here: the user's password changed, which ends every portal session): the
    next request that needs it answers 401 and the dashboard's session is gone, not left to loop on sign-in."""
    frank = site.user("frank")
    with sign_in(site.dashboard, "frank", "a long enough password") as client:
        change = {"current_password": "a long enough password", "new_password": "another long password"}
        changed = httpx.post(f"{site.portal}/api/auth/password", headers=frank, json=change)
        assert changed.status_code == 204, changed.text
        assert client.get("/api/usage").status_code == 401
        assert client.get("/api/me").status_code == 401
        assert client.get("/", follow_redirects=False).status_code == 303


def lens_registry() -> tuple[CollectorRegistry, dict[str, Any]]:
    """A process's Lens metrics as rag-api and the task-workers export them (atlas_lens, atlas_engine.telemetry)."""
    registry = CollectorRegistry()
    metrics: dict[str, Any] = {
        "version": Gauge("atlas_lens_weights_version", "", registry=registry),
        "auc": Gauge("atlas_lens_validation_auc", "", registry=registry),
        "reloads": Counter("atlas_lens_reloads_total", "", ["result"], registry=registry),
        "picks": Counter("atlas_lens_picks_total", "", ["changed"], registry=registry),
        "feedback": Counter("atlas_lens_feedback_total", "", ["result"], registry=registry),
    }
    for name, labels in (("reloads", ("loaded", "refused")), ("picks", ("true", "false")),
                         ("feedback", ("recorded", "skipped", "dropped", "failed"))):
        for label in labels:  # as the services do: every series exists, at 0, from the start
            metrics[name].labels(label)
    return registry, metrics


def collected_twice(service_env: dict[str, str], redis_server: RedisServer, registries: tuple[CollectorRegistry, ...],
                    change: Callable[[], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The panels after one collection from a rag-api and a task-worker exporting ``registries``, and after
    ``change`` and a second collection (an admin's view, 15 minutes)."""
    rag_registry, worker_registry = registries
    with ServerThread(target_app(rag_registry)) as rag_api, ServerThread(target_app(worker_registry)) as task_worker:
        settings = load_settings(Settings, environ=service_env | {
            "ATLAS_DASHBOARD_TARGETS": f"rag-api={rag_api.url},task-worker={task_worker.url}"})

        async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
            redis = Redis.from_url(redis_server.url, password=redis_server.password)
            try:
                async with httpx.AsyncClient() as http:
                    collecting = Collector(redis, http, settings, families(), CollectorRegistry())
                    admin = Viewer(1, "admin", True, "", "")
                    now = time.time()
                    assert await collecting.collect(now)
                    before = await views.panels(redis, admin, "15m", now + 1)
                    change()
                    assert await collecting.collect(now + 1)
                    return before, await views.panels(redis, admin, "15m", now + 2)
            finally:
                await redis.aclose()

        return asyncio.run(scenario())


def test_the_lens_panels_read_rag_api_and_the_workers(service_env: dict[str, str], redis_server: RedisServer) -> None:
    """No weights: version 0 (the page says "none") and nothing counted; then a version goes live in rag-api
    before the worker has it: the newest version shows, picks changed are counted over the solves the Lens
    scored in both processes, refused weights and training records by result."""
    (rag_registry, rag), (worker_registry, worker) = lens_registry(), lens_registry()

    def change() -> None:
        rag["version"].set(3)
        rag["auc"].set(0.81)
        rag["reloads"].labels("loaded").inc()
        worker["version"].set(2)
        worker["auc"].set(0.78)
        worker["reloads"].labels("refused").inc()
        rag["picks"].labels("true").inc()
        rag["picks"].labels("false").inc(2)
        worker["picks"].labels("false").inc()
        rag["feedback"].labels("recorded").inc(2)
        worker["feedback"].labels("failed").inc()

    first, data = collected_twice(service_env, redis_server, (rag_registry, worker_registry), change)
    before = {p["id"]: p for p in first["panels"]}
    assert [r["now"] for r in before["lens-version"]["summary"]] == [0.0]
    assert before["lens-picks"]["summary"][0]["of"] == 0
    assert before["lens-reloads"]["summary"] == before["lens-feedback"]["summary"] == []
    shown = {p["id"]: p for p in data["panels"]}
    assert {p["id"]: p["section"] for p in data["panels"] if p["id"].startswith("lens-")} == dict.fromkeys(
        ("lens-version", "lens-auc", "lens-picks", "lens-reloads", "lens-feedback"), "Lens")
    assert [r["now"] for r in shown["lens-version"]["summary"]] == [3.0]
    assert [r["now"] for r in shown["lens-auc"]["summary"]] == [0.81]
    assert [(r["part"], r["of"], r["percent"]) for r in shown["lens-picks"]["summary"]] == [(1.0, 4.0, 25.0)]
    assert {r["name"]: r["total"] for r in shown["lens-reloads"]["summary"]} == {"loaded": 1.0, "refused": 1.0}
    assert {r["name"]: r["total"] for r in shown["lens-feedback"]["summary"]} == {"recorded": 2.0, "failed": 1.0}


def test_the_router_panels_read_rag_api_and_the_workers(service_env: dict[str, str],
                                                        redis_server: RedisServer) -> None:
    """The router's own metrics (RouterMetrics, as rag-api and the workers export them): the route mix summed over
    both processes, the posterior of each (bin, route), the compute routed solves spent against what the
    standard route would have, and the cache's hit rate."""
    from atlas_router.metrics import RouterMetrics

    registries = CollectorRegistry(), CollectorRegistry()
    rag, worker = RouterMetrics(registries[0]), RouterMetrics(registries[1])
    rag.decisions.labels("fast", "LOW")  # a series at 0 before anything happens

    def change() -> None:
        rag.decisions.labels("fast", "LOW").inc(3)
        worker.decisions.labels("deep", "HIGH").inc()
        rag.escalations.inc(2)
        rag.posterior.labels("LOW", "fast").set(0.8)
        rag.compute.labels("fast").inc(600)
        rag.compute.labels("standard").inc(3000)
        rag.baseline.inc(7200)
        rag.lookups.labels("hit").inc()
        worker.lookups.labels("miss").inc(3)
        rag.writes.inc()

    _, data = collected_twice(service_env, redis_server, registries, change)
    shown = {p["id"]: p for p in data["panels"]}
    assert {p["id"] for p in data["panels"] if p["section"] == "Router"} == {
        "router-routes", "router-steps", "router-escalations", "router-posteriors", "router-compute",
        "pattern-hits", "pattern-lookups", "pattern-writes"}
    assert {r["name"]: r["total"] for r in shown["router-routes"]["summary"]} == {"fast": 3.0, "deep": 1.0}
    assert [r["now"] for r in shown["router-posteriors"]["summary"] if r["name"] == "LOW fast"] == [0.8]
    assert [(r["part"], r["of"], r["percent"]) for r in shown["router-compute"]["summary"]] == [(3600.0, 7200.0,
                                                                                                 50.0)]
    assert [(r["part"], r["of"]) for r in shown["pattern-hits"]["summary"]] == [(1.0, 4.0)]
