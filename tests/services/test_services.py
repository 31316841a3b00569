"""Every service starts from ``create_app(settings)`` and reports its real dependencies on ``/readyz``."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from atlas_core.settings import load_settings
from tests.conftest import METRICS_TOKEN, free_port

# package -> the dependency checks its /readyz must report
SERVICES = {
    "atlas_portal": {"redis", "database"},
    "atlas_proxy": {"redis", "api-portal", "llama-server"},
    "atlas_rag": {"redis", "llama-server", "embedding-server", "sandbox"},
    "atlas_sandbox": {"redis"},
    "atlas_worker": {"redis", "llama-server", "sandbox"},
    "atlas_dashboard": {"redis", "api-portal"},  # sign-in and usage go through the portal
}


@pytest.mark.parametrize("package", sorted(SERVICES))
def test_service_health_and_readiness(package: str, service_env: dict[str, str]) -> None:
    settings_cls = importlib.import_module(f"{package}.settings").Settings
    create_app = importlib.import_module(f"{package}.app").create_app
    app = create_app(load_settings(settings_cls, environ=service_env))
    with TestClient(app) as client:
        assert client.get("/livez").status_code == 200
        ready = client.get("/readyz")
        checks = ready.json()["checks"]
        assert set(checks) == SERVICES[package]
        assert checks["redis"] == "ok"
        # Only Redis and the portal's own database are up in this test: every other dependency must fail.
        expected_ok = {"redis", "database"} & SERVICES[package]
        assert {name for name, result in checks.items() if result == "ok"} == expected_ok
        assert ready.status_code == (200 if expected_ok == SERVICES[package] else 503)
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200


@pytest.mark.parametrize("package", sorted(SERVICES))
def test_service_with_redis_down_is_not_ready(package: str, service_env: dict[str, str]) -> None:
    settings_cls = importlib.import_module(f"{package}.settings").Settings
    create_app = importlib.import_module(f"{package}.app").create_app
    env = service_env | {"ATLAS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with TestClient(create_app(load_settings(settings_cls, environ=env))) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] != "ok"


@pytest.mark.parametrize("package", sorted(SERVICES))
def test_bad_setting_stops_the_service_with_one_clear_line(package: str, service_env: dict[str, str]) -> None:
    env = {k: v for k, v in service_env.items() if k != "ATLAS_METRICS_TOKEN"} | {"PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", package], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "configuration error: ATLAS_METRICS_TOKEN is required" in lines[0]
