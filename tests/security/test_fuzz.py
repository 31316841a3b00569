"""Every service's OpenAPI document fuzzed with schemathesis (tests/security/fuzzing.py): no 5xx, no hang, no stack
trace on any route. The proxy's document is fuzzed in tests/proxy/test_fuzz.py, against its fake backends and a
real rag-api."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atlas_core.capability import mint, signing_key
from atlas_core.settings import load_settings
from tests.conftest import (
    LLAMA_KEY,
    METRICS_TOKEN,
    PROXY_TOKEN,
    RECOVERY_TOKEN,
    SANDBOX_SIGNING,
    RedisServer,
    ServerThread,
    free_port,
)
from tests.rag.fake_llm import fake_llm
from tests.sandbox.conftest import sandbox_env
from tests.security.fuzzing import fuzz

METRICS = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def env(redis_server: RedisServer, tmp_path: Path, sandbox_url: str) -> dict[str, str]:
    with redis_server.client() as client:
        client.flushdb()
    return sandbox_env(redis_server, tmp_path) | {
        "ATLAS_PROXY_TOKEN": PROXY_TOKEN, "ATLAS_RECOVERY_TOKEN": RECOVERY_TOKEN, "ATLAS_LLAMA_API_KEY": LLAMA_KEY,
        "ATLAS_SANDBOX_SIGNING_KEY": SANDBOX_SIGNING, "ATLAS_SANDBOX_URL": sandbox_url,
        "ATLAS_JWT_SECRET": secrets.token_urlsafe(32), "ATLAS_KEY_HASH_SECRET": secrets.token_urlsafe(32),
        "ATLAS_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}", "ATLAS_RAG_DEADLINE_S": "10",
        **{key: f"http://127.0.0.1:{free_port()}" for key in ("ATLAS_LLAMA_URL", "ATLAS_EMBED_URL",
                                                               "ATLAS_PORTAL_URL", "ATLAS_RAG_URL")}}


@pytest.fixture
def llama(env: dict[str, str]) -> Iterator[str]:
    app = fake_llm(LLAMA_KEY)
    app.state.script = lambda body: "```python\ndef add(a, b):\n    return a + b\n```"
    with ServerThread(app) as server:
        env["ATLAS_LLAMA_URL"] = server.url
        yield server.url


class AdminLogin:
    """The admin's login for the fuzzer, renewed when a fuzzed request ended it (a password reset of user 1, a
    password change): through the host's recovery route, as an operator would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.token = ""

    def headers(self) -> dict[str, str]:
        bearer = {"Authorization": f"Bearer {self.token}"}
        if self.token and httpx.get(f"{self.url}/api/auth/me", headers=bearer).status_code == 200:
            return bearer
        password = httpx.post(f"{self.url}/internal/recover", json={"username": "admin"},
                              headers={"Authorization": f"Bearer {RECOVERY_TOKEN}"}).json()["password"]
        self.token = httpx.post(f"{self.url}/api/auth/login",
                                json={"username": "admin", "password": password}).json()["access_token"]
        return {"Authorization": f"Bearer {self.token}"}


def test_the_portal_survives_fuzzing(env: dict[str, str]) -> None:
    from atlas_portal.app import create_app
    from atlas_portal.settings import Settings

    app = create_app(load_settings(Settings, environ=env))
    with ServerThread(app) as server:
        httpx.post(f"{server.url}/internal/bootstrap", headers={"Authorization": f"Bearer {RECOVERY_TOKEN}"})
        admin = AdminLogin(server.url)

        def credentials(method: str, path: str) -> dict[str, str]:
            if path.startswith("/internal/keys") or path == "/internal/models":
                return {"Authorization": f"Bearer {PROXY_TOKEN}"}
            if path.startswith("/internal/"):
                return {"Authorization": f"Bearer {RECOVERY_TOKEN}"}
            return admin.headers()

        # Logging out would end the session the next requests use (logout has tests of its own); every other
        # route is fuzzed as the admin, who may reach all of them.
        ran = fuzz(app.openapi(), server.url, credentials, skip=lambda method, path: path == "/api/auth/logout")
    assert len(ran) == 18  # every route but logout and the health probes
    assert ran["POST /api/keys"][201] and ran["PATCH /api/users/{user_id}"][200]  # the cases reach the handlers


def test_rag_api_survives_fuzzing(env: dict[str, str], llama: str) -> None:
    from atlas_rag.app import create_app
    from atlas_rag.settings import Settings

    app = create_app(load_settings(Settings, environ=env))
    with ServerThread(app) as server:
        def credentials(method: str, path: str) -> dict[str, str]:
            if path.startswith("/internal/"):
                return METRICS
            return {"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": "7"}

        ran = fuzz(app.openapi(), server.url, credentials)
    assert {"POST /v1/solve", "POST /v1/chat/completions", "POST /v1/tasks", "GET /v1/tasks/{task_id}/events"} <= \
        set(ran)
    assert ran["POST /v1/solve"][200] and ran["GET /v1/tasks"][200]  # the cases reach the handlers


def test_the_sandbox_survives_fuzzing(env: dict[str, str], sandbox_url: str) -> None:
    from atlas_sandbox.app import create_app
    from atlas_sandbox.settings import Settings

    app = create_app(load_settings(Settings, environ=env))
    key = signing_key(SANDBOX_SIGNING)

    def credentials(method: str, path: str) -> dict[str, str]:
        if path in ("/execute", "/judge"):
            token = mint(key, issuer="fuzz", task_id="fuzz", languages=["python", "javascript", "c", "cpp", "rust",
                                                                        "bash"], limits={"timeout_s": 2})
            return {"Authorization": f"Bearer {token}"}
        return METRICS

    ran = fuzz(app.openapi(), sandbox_url, credentials)
    assert {"POST /execute", "POST /judge", "GET /languages"} <= set(ran)
    assert ran["POST /execute"][200] and ran["POST /judge"][200]


@pytest.mark.parametrize("service", ["task-worker", "dashboard"])
def test_health_only_services_survive_fuzzing(env: dict[str, str], service: str) -> None:
    if service == "task-worker":
        from atlas_worker.app import create_app as worker
        from atlas_worker.settings import Settings as WorkerSettings

        app = worker(load_settings(WorkerSettings, environ=env))
    else:
        from atlas_dashboard.app import create_app as dashboard
        from atlas_dashboard.settings import Settings as DashboardSettings

        app = dashboard(load_settings(DashboardSettings, environ=env))
    with ServerThread(app) as server:
        fuzz(app.openapi(), server.url, lambda method, path: METRICS)
        for path in ("/livez", "/metrics"):
            assert httpx.get(f"{server.url}{path}", headers=METRICS).status_code == 200
        ready = httpx.get(f"{server.url}/readyz", headers=METRICS)  # the worker's model server is not there
        assert ready.status_code == 200 or (ready.status_code == 503 and "retry-after" in ready.headers), ready.text


def narrowed(spec: dict[str, Any]) -> dict[str, Any]:
    """The embedding server's document with its input narrowed to a few short texts: the fuzzer would otherwise
    spend minutes of CPU embedding 512 texts of 32,000 characters (their bound has its own test)."""
    spec = copy.deepcopy(spec)
    schema = spec["components"]["schemas"]["EmbeddingRequest"]["properties"]["input"]
    for branch in schema["anyOf"]:
        if branch.get("type") == "string":
            branch["maxLength"] = 200
        else:
            branch["maxItems"], branch["items"]["maxLength"] = 4, 200
    return spec


def test_the_embedding_server_survives_fuzzing(env: dict[str, str]) -> None:
    from atlas_llama.embed import Settings as EmbedSettings
    from atlas_llama.embed import create_app

    app = create_app(load_settings(EmbedSettings, environ=env))
    with ServerThread(app) as server:
        ran = fuzz(narrowed(app.openapi()), server.url,
                   lambda method, path: {"Authorization": f"Bearer {LLAMA_KEY}"}, examples=8)
    assert ran["POST /v1/embeddings"][200]
