"""Every input has a declared bound, on every route of every service's OpenAPI document, and an oversized input is
refused before anything is stored. New routes are covered the day they are added: the test walks the documents.

- Declared: every string has a maxLength (or is an enum or pattern-free constant), every array a maxItems; the only
  free-form values are test arguments and expected values (JSON of any shape, bounded by the body's size).
- Enforced: a body one byte over the service's limit is refused with 413, whether its length is declared or it
  arrives in chunks, and Redis and the portal's database are exactly as they were; a path or query value over its
  bound is a 4xx, never a 5xx."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from atlas_core.settings import load_settings
from tests.conftest import RedisServer
from tests.sandbox.conftest import sandbox_env

# Free-form JSON values, bounded only by the body limit (a test's arguments and expected value).
FREE_FORM = {"tests[].args[]", "tests[].expected", "atlas.tests[].args[]", "atlas.tests[].expected"}
# Message content may be text or OpenAI's content parts: each part is an object of the client's.
CONTENT_PARTS = {"messages[].content[]"}
SERVICES = ("api-portal", "llm-proxy", "rag-api", "sandbox", "task-worker", "dashboard", "embedding-server")


@dataclass
class Service:
    name: str
    app: FastAPI
    client: TestClient
    limit: int
    database: Path | None = None


def build(name: str, env: dict[str, str]) -> FastAPI:
    if name == "api-portal":
        from atlas_portal.app import create_app as portal
        from atlas_portal.settings import Settings as PortalSettings

        return portal(load_settings(PortalSettings, environ=env))
    if name == "llm-proxy":
        from atlas_proxy.app import create_app as proxy
        from atlas_proxy.settings import Settings as ProxySettings

        return proxy(load_settings(ProxySettings, environ=env))
    if name == "rag-api":
        from atlas_rag.app import create_app as rag
        from atlas_rag.settings import Settings as RagSettings

        return rag(load_settings(RagSettings, environ=env))
    if name == "sandbox":
        from atlas_sandbox.app import create_app as sandbox
        from atlas_sandbox.settings import Settings as SandboxSettings

        return sandbox(load_settings(SandboxSettings, environ=env))
    if name == "task-worker":
        from atlas_worker.app import create_app as worker
        from atlas_worker.settings import Settings as WorkerSettings

        return worker(load_settings(WorkerSettings, environ=env))
    if name == "dashboard":
        from atlas_dashboard.app import create_app as dashboard
        from atlas_dashboard.settings import Settings as DashboardSettings

        return dashboard(load_settings(DashboardSettings, environ=env))
    from atlas_llama.embed import Settings as EmbedSettings
    from atlas_llama.embed import create_app as embed

    return embed(load_settings(EmbedSettings, environ=env))


@pytest.fixture(scope="module", params=SERVICES)
def service(request: pytest.FixtureRequest, redis_server: RedisServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    from tests.conftest import LLAMA_KEY, METRICS_TOKEN, PROXY_TOKEN, RECOVERY_TOKEN, SANDBOX_SIGNING, free_port

    tmp = tmp_path_factory.mktemp(request.param)
    database = tmp / "portal.db"
    env = sandbox_env(redis_server, tmp) | {
        "ATLAS_PROXY_TOKEN": PROXY_TOKEN, "ATLAS_RECOVERY_TOKEN": RECOVERY_TOKEN, "ATLAS_METRICS_TOKEN": METRICS_TOKEN,
        "ATLAS_LLAMA_API_KEY": LLAMA_KEY, "ATLAS_SANDBOX_SIGNING_KEY": SANDBOX_SIGNING,
        "ATLAS_JWT_SECRET": secrets.token_urlsafe(32), "ATLAS_KEY_HASH_SECRET": secrets.token_urlsafe(32),
        "ATLAS_DATABASE_URL": f"sqlite:///{database}",
        **{key: f"http://127.0.0.1:{free_port()}" for key in (
            "ATLAS_LLAMA_URL", "ATLAS_EMBED_URL", "ATLAS_SANDBOX_URL", "ATLAS_PORTAL_URL", "ATLAS_RAG_URL")}}
    app = build(request.param, env)
    client = TestClient(app, raise_server_exceptions=False)
    if request.param == "embedding-server":  # its lifespan loads a model: no state to protect, none needed
        yield Service(request.param, app, client, app.state.max_body_bytes)
        return
    with client:
        if request.param == "task-worker":  # its consumer creates the queue's streams as it starts: let it finish
            deadline = time.monotonic() + 10
            while not app.state.worker.queue.groups_ready and time.monotonic() < deadline:
                time.sleep(0.05)
        yield Service(request.param, app, client, app.state.max_body_bytes,
                      database if request.param == "api-portal" else None)


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in app.openapi()["paths"].items()
            for method, op in ops.items()]


def unbounded(schema: dict[str, Any], components: dict[str, Any], path: str = "", seen: tuple[str, ...] = ()
              ) -> list[str]:
    """Where a schema admits input of any size: strings without maxLength, arrays without maxItems."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return [] if name in seen else unbounded(components[name], components, path, (*seen, name))
    found: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found += unbounded(sub, components, path, seen)
    kind = schema.get("type")
    if kind == "string" and not ({"maxLength", "enum", "const", "format"} & set(schema)):
        found.append(path)
    if kind == "array":
        if "maxItems" not in schema:
            found.append(path)
        if path + "[]" not in CONTENT_PARTS:
            found += unbounded(schema.get("items", {}), components, path + "[]", seen)
    for name, sub in schema.get("properties", {}).items():
        found += unbounded(sub, components, f"{path}.{name}".lstrip("."), seen)
    if isinstance(schema.get("additionalProperties"), dict):
        found += unbounded(schema["additionalProperties"], components, path + "{}", seen)
    free = not ({"type", "anyOf", "oneOf", "allOf", "$ref", "properties", "enum", "const"} & set(schema))
    if free and path not in FREE_FORM:
        found.append(path + " (any JSON)")
    return found


def test_every_input_of_every_route_has_a_declared_bound(service: Service) -> None:
    spec = service.app.openapi()
    components = spec.get("components", {}).get("schemas", {})
    problems = []
    for method, path, op in operations(service.app):
        for parameter in op.get("parameters", []):
            problems += [f"{method} {path} {parameter['in']} {p or parameter['name']}"
                         for p in unbounded(parameter.get("schema", {}), components)]
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        problems += [f"{method} {path} body {p}" for p in (unbounded(body, components) if body else [])]
    assert problems == []
    assert service.limit <= 64 * 1024 * 1024


def test_the_proxys_document_names_every_route_it_serves(service: Service) -> None:
    if service.name != "llm-proxy":
        pytest.skip("the other services' documents are generated from their routes")
    from atlas_proxy.routes import routes

    documented = {(method, path) for method, path, _ in operations(service.app)}
    served = {(method, route.path.replace(":path", "")) for route in routes() for method in route.methods or ()
              if method != "HEAD"}
    assert served <= documented


SIZE = {b"string": "strlen", b"hash": "hlen", b"list": "llen", b"set": "scard", b"zset": "zcard", b"stream": "xlen"}


def snapshot(service: Service, redis_server: RedisServer) -> tuple[dict[bytes, Any], set[bytes], list[Any]]:
    """Redis's keys without an expiry with their type and size (a stream's consumer bookkeeping changes as a worker
    polls, its length does not), the keys with an expiry (they may expire by themselves, as other tests'
    single-use sandbox tokens do), and the portal's row counts."""
    with redis_server.client() as client:
        # a worker's heartbeat rewrites its entry every second: the one key that changes on its own
        keys = [k for k in client.keys("*") if k != b"atlas:tasks:workers"]
        ttls = {k: client.ttl(k) for k in keys}
        kinds = {k: client.type(k) for k in keys}
        lasting = {k: (kinds[k], getattr(client, SIZE[kinds[k]])(k)) for k in keys if ttls[k] == -1}
        expiring = {k for k in keys if ttls[k] >= 0}
    rows: list[Any] = []
    if service.database is not None:
        with sqlite3.connect(service.database) as db:
            tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            rows = [(t, db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()) for t in sorted(tables)]  # noqa: S608
    return lasting, expiring, rows


def test_an_oversized_body_is_refused_before_anything_is_stored(service: Service,
                                                                redis_server: RedisServer) -> None:
    before = snapshot(service, redis_server)
    oversized = b"x" * (service.limit + 1)
    for method, path, op in operations(service.app):
        url = path.replace("{", "").replace("}", "").replace(":path", "")
        declared = service.client.request(method, url, content=oversized,
                                          headers={"Content-Type": "application/json"})
        assert declared.status_code == 413, (method, path, declared.text)
        assert f"limit of {service.limit} bytes" in declared.json()["error"]["message"]
        if "requestBody" in op:
            streamed = service.client.request(method, url, content=iter([oversized[:65536]] * (
                service.limit // 65536 + 1)), headers={"Content-Type": "application/json"})
            # The proxy checks the key before it reads a body: a caller without one never gets that far.
            refused = (413, 401) if service.name == "llm-proxy" else (413,)
            assert streamed.status_code in refused, (method, path, streamed.text)
    lasting, expiring, rows = snapshot(service, redis_server)
    assert (lasting, rows) == (before[0], before[2])
    assert expiring <= before[1]  # nothing new, not even a key that would expire (a login throttle's)


def test_path_and_query_values_over_their_bounds_are_refused_cleanly(service: Service) -> None:
    for method, path, op in operations(service.app):
        if not op.get("parameters"):
            continue
        url, query = path, {}
        for parameter in op["parameters"]:
            schema = parameter.get("schema", {})
            value = "9" * (schema.get("maxLength", 64) + 1) if schema.get("type") == "string" else "9" * 40
            if parameter["in"] == "path":
                url = url.replace("{" + parameter["name"] + "}", value).replace("{" + parameter["name"] + ":path}",
                                                                                value)
            elif parameter["in"] == "query":
                query[parameter["name"]] = value
        answer = service.client.request(method, url, params=query)
        assert 400 <= answer.status_code < 500, (method, path, answer.status_code, answer.text)
        assert "Traceback" not in answer.text
