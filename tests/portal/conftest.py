"""The portal against a real database: SQLite, and PostgreSQL when one answers on 127.0.0.1:5432."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from atlas_core.settings import load_settings
from atlas_portal.app import create_app
from atlas_portal.settings import Settings
from tests.conftest import PROXY_TOKEN, RECOVERY_TOKEN

PG_ADMIN_URL = os.environ.get("ATLAS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PROXY = {"Authorization": f"Bearer {PROXY_TOKEN}"}  # key validation and the model list
HOST = {"Authorization": f"Bearer {RECOVERY_TOKEN}"}  # bootstrap and recovery


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the session, dropped afterwards; skipped (visibly) without a server."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL variant skipped: no server at {PG_ADMIN_URL} ({exc})")
    name = f"atlas_test_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'portal.db'}"
    url: str = request.getfixturevalue("postgres_url")
    # Each test gets empty tables: drop whatever the previous test created.
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    return url


@pytest.fixture
def portal_env(service_env: dict[str, str], database_url: str) -> dict[str, str]:
    return service_env | {"ATLAS_DATABASE_URL": database_url}


@pytest.fixture
def portal(portal_env: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(load_settings(Settings, environ=portal_env))
    with TestClient(app) as client:
        yield client


def bootstrap(client: TestClient) -> dict[str, str]:
    response = client.post("/internal/bootstrap", headers=HOST)
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def login(client: TestClient, name: str, password: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def make_user(client: TestClient, admin: dict[str, str], name: str) -> dict[str, str]:
    password = f"{name}-password-123"
    created = client.post("/api/auth/register", headers=admin,
                          json={"username": name, "email": f"{name}@example.com", "password": password})
    assert created.status_code == 201, created.text
    return login(client, name, password)
