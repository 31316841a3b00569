"""A real sandbox service (bubblewrap, cgroups, seccomp) shared by a test module, and a caller that mints a
fresh capability token for every request, as rag-api and the task-worker do."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from atlas_core.capability import mint, public_key_text, signing_key
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
