"""A real sandbox service (bubblewrap, cgroups, seccomp) shared by a test module, and a caller that mints a
fresh capability token for every request, as rag-api and the task-worker do."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from atlas_core.capability import SANDBOX_AUDIENCE, mint, public_key_text, signing_key
from atlas_core.settings import load_settings
from atlas_sandbox.app import create_app
from atlas_sandbox.settings import Settings
from tests.conftest import METRICS_TOKEN, SANDBOX_SIGNING, RedisServer

ALL_LANGUAGES = ("python", "javascript", "c", "cpp", "rust", "bash")


class Sandbox:
    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.key = signing_key(SANDBOX_SIGNING)

    def token(self, languages: tuple[str, ...] = ALL_LANGUAGES, limits: dict[str, Any] | None = None,
              ttl_s: int = 60) -> str:
        return mint(self.key, issuer="tests", task_id="t-" + secrets.token_hex(4), languages=languages,
                    limits=limits, ttl_s=ttl_s)

    def post(self, path: str, body: dict[str, Any], token: str | None = None, **token_args: Any) -> Any:
        bearer = token if token is not None else self.token(**token_args)
        return self.client.post(path, json=body, headers={"Authorization": f"Bearer {bearer}"})

    def execute(self, code: str, language: str = "python", **fields: Any) -> dict[str, Any]:
        response = self.post("/execute", {"code": code, "language": language, **fields})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def judge(self, **body: Any) -> dict[str, Any]:
        response = self.post("/judge", body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def metrics(self) -> dict[str, dict[str, float]]:
        """Every sample of ``GET /metrics`` (read with the metrics credential): sample name -> labels -> value,
        the labels written as Prometheus does, sorted by name: 'endpoint="execute",language="python"'."""
        response = self.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200, response.text
        samples: dict[str, dict[str, float]] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples.setdefault(sample.name, {})[labels] = sample.value
        return samples


@contextmanager
def redis_down(sandbox: Sandbox) -> Iterator[None]:
    """The sandbox's token store refusing connections, as a Redis that went away."""
    store = sandbox.client.app.state.verifier.used  # type: ignore[attr-defined]
    real = store.redis

    class Down:
        async def set(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("connection refused")

    store.redis = Down()
    try:
        yield
    finally:
        store.redis = real


def raw_token(sandbox: Sandbox, **claims: Any) -> str:
    """A token signed with the callers' key whose claims the test picks (None leaves a claim out)."""
    now = int(time.time())
    body = {"iss": "tests", "aud": SANDBOX_AUDIENCE, "iat": now, "exp": now + 60, "jti": f"j{time.time_ns()}",
            "task": "t", "langs": ["python"], "limits": {}} | claims
    return jwt.encode({k: v for k, v in body.items() if v is not None}, sandbox.key, algorithm="EdDSA")


def moved(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], name: str) -> dict[str, float]:
    """How each series of the sample ``name`` changed between two scrapes; series that did not are left out."""
    old, new = before.get(name, {}), after.get(name, {})
    return {labels: new.get(labels, 0.0) - old.get(labels, 0.0) for labels in sorted(old.keys() | new.keys())
            if new.get(labels, 0.0) != old.get(labels, 0.0)}


def sandbox_env(redis_server: RedisServer, tmp_path: Any, **extra: str) -> dict[str, str]:
    return {
        "ATLAS_METRICS_TOKEN": METRICS_TOKEN,
        "ATLAS_SANDBOX_VERIFY_KEY": public_key_text(SANDBOX_SIGNING),
        "ATLAS_REDIS_URL": redis_server.url,
        "ATLAS_REDIS_PASSWORD": redis_server.password,
        "ATLAS_STATE_DIR": str(tmp_path / "state"),
        **extra,
    }


@pytest.fixture(scope="module")
def sandbox(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    settings = load_settings(Settings, environ=sandbox_env(redis_server, tmp_path_factory.mktemp("sandbox")))
    with TestClient(create_app(settings)) as client:
        yield Sandbox(client, settings)
