"""The shared plumbing every service gets: health, metrics behind the service token, request ids, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import Gauge
from pydantic import BaseModel

from atlas_core.app import open_clients, service_app
from atlas_core.settings import load_settings
from atlas_sandbox.settings import Settings
from tests.conftest import METRICS_TOKEN, RedisServer, free_port


class Item(BaseModel):
    count: int


def build(env: dict[str, str]) -> FastAPI:
    settings = load_settings(Settings, environ=env)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await open_clients(app, settings, stack)
            yield

    app = service_app("test-service", settings.metrics_token, lifespan, max_body_bytes=1024)

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals sk-llm-should-never-leave")

    return app


@pytest.fixture
def client(service_env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(build(service_env), raise_server_exceptions=False) as test_client:
        yield test_client


def test_livez_and_readyz_with_redis_up(client: TestClient) -> None:
    assert client.get("/livez").json() == {"status": "ok", "service": "test-service"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": "ok"}


def test_readyz_is_503_with_a_reason_when_redis_is_down(service_env: dict[str, str]) -> None:
    env = service_env | {"ATLAS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with TestClient(build(env)) as down:
        public = down.get("/readyz")
        detailed = down.get("/readyz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert public.status_code == detailed.status_code == 503
    assert public.json()["status"] == "not ready"
    assert public.json()["checks"]["redis"] == "unavailable"  # no hosts or driver messages for anonymous callers
    assert "ConnectionError" in detailed.json()["checks"]["redis"]


def test_metrics_need_the_service_token(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    client.get("/livez")
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert 'atlas_http_requests_total{method="GET",route="/livez",service="test-service",status="200"}' in response.text


def test_request_id_is_propagated_or_generated(client: TestClient) -> None:
    assert client.get("/livez", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/livez", headers={"X-Request-Id": "bad id with spaces"}).headers["x-request-id"]
    assert generated != "bad id with spaces"
    assert len(generated) == 32


def test_errors_use_the_openai_shape_without_internals(client: TestClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"

    wrong_type = client.post("/items", json={"count": "many"})
    assert wrong_type.status_code == 400
    assert wrong_type.json()["error"]["param"] == "count"
    assert "count" in wrong_type.json()["error"]["message"]

    not_json = client.post("/items", content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]["message"]

    crash = client.get("/boom", headers={"X-Request-Id": "boom-1"})
    assert crash.status_code == 500
    assert crash.headers["x-request-id"] == "boom-1"
    assert "boom-1" in crash.json()["error"]["message"]
    assert "secret internals" not in crash.text
    assert "Traceback" not in crash.text
    assert crash.json()["error"]["type"] == "server_error"


def test_readyz_warns_before_redis_is_full_and_metrics_show_it(client: TestClient, redis_server: RedisServer) -> None:
    scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert "maxmemory" in client.get("/readyz", headers=scrape).json()["warnings"]["redis"]  # none set: unbounded
    with redis_server.client() as admin:
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", str(int(used / 0.9)))  # about 90% used: past the 80% alarm
        try:
            ready = client.get("/readyz", headers=scrape)
            anonymous = client.get("/readyz")
        finally:
            admin.config_set("maxmemory", "0")
    assert ready.status_code == 200  # still ready: a warning, not an outage
    assert "ATLAS_REDIS_MAXMEMORY_MB" in ready.json()["warnings"]["redis"]
    assert anonymous.json()["warnings"] == {"redis": "warning"}  # the numbers only with the credential
    gauge = [line for line in client.get("/metrics", headers=scrape).text.splitlines()
             if line.startswith("atlas_redis_memory_used_ratio ")]
    assert gauge and float(gauge[0].split()[1]) > 0.8


def test_bodies_over_the_limit_are_refused_with_413(client: TestClient) -> None:
    padded = b'{"count": 1' + b" " * 2000 + b"}"
    big = client.post("/items", content=padded, headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "1024 bytes" in big.json()["error"]["message"]
    assert client.post("/items", json={"count": 1}).status_code == 200


def test_metrics_await_the_refreshers_and_a_failing_or_slow_one_never_fails_the_scrape(
        service_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    app = build(service_env)
    metrics = app.state.metrics
    gauge = Gauge("atlas_test_refreshed", "Set at scrape time", registry=metrics.registry)
    scrapes: list[int] = []

    async def good() -> None:
        scrapes.append(1)
        gauge.set(len(scrapes))

    async def broken() -> None:
        raise ConnectionError("Redis is away")

    async def stuck() -> None:
        await asyncio.sleep(60)

    metrics.refresh_timeout_s = 0.3
    metrics.refreshers.extend([good, broken, stuck])
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401 and scrapes == []  # no refresh without the credential
        started = time.monotonic()
        first = client.get("/metrics", headers=headers)
        took = time.monotonic() - started
        second = client.get("/metrics", headers=headers)
    assert first.status_code == second.status_code == 200
    assert "atlas_test_refreshed 1.0" in first.text and "atlas_test_refreshed 2.0" in second.text
    assert took < 2  # the stuck one waited its timeout, not its minute
    logged = [r.getMessage() for r in caplog.records if r.name == "atlas.metrics"]
    assert any("broken" in m and "Redis is away" in m for m in logged)
    assert any("stuck" in m and "TimeoutError" in m for m in logged)
