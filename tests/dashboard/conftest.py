"""The dashboard with the real portal and Redis on loopback; its collector watches a target the test controls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from atlas_core.settings import load_settings
from atlas_dashboard.app import create_app as dashboard_app
from atlas_dashboard.settings import Settings as DashboardSettings
from atlas_portal.app import create_app as portal_app
from atlas_portal.settings import Settings as PortalSettings
from tests.conftest import RECOVERY_TOKEN, ServerThread


@dataclass
class Site:
    portal: str
    dashboard: str
    admin_password: str
    admin: dict[str, str]  # the portal's admin token, as headers

    def user(self, name: str, password: str = "a long enough password") -> dict[str, str]:  # noqa: S107
        """A new user who is not an admin; returns their portal token as headers."""
        created = httpx.post(f"{self.portal}/api/auth/register", headers=self.admin,
                             json={"username": name, "email": f"{name}@example.org", "password": password})
        assert created.status_code == 201, created.text
        login = httpx.post(f"{self.portal}/api/auth/login", json={"username": name, "password": password})
        return {"Authorization": f"Bearer {login.json()['access_token']}"}


@contextmanager
def sign_in(base: str, name: str, password: str) -> Iterator[httpx.Client]:
    """A browser-like client signed in to the dashboard (the login page's cookie, then the form's token)."""
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/login").status_code == 200
        csrf = client.get("/api/login/csrf").json()["csrf"]
        answer = client.post("/api/login", json={"username": name, "password": password},
                             headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 204, answer.text
        yield client


@pytest.fixture
def site(service_env: dict[str, str], tmp_path: Path) -> Iterator[Site]:
    env = service_env | {"ATLAS_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
                         "ATLAS_PUBLIC_API_URL": "http://127.0.0.1:8000/v1", "ATLAS_USER_DEFAULT_RPM": "0"}
    with ServerThread(portal_app(load_settings(PortalSettings, environ=env))) as portal:
        boot = httpx.post(f"{portal.url}/internal/bootstrap", headers={"Authorization": f"Bearer {RECOVERY_TOKEN}"})
        password = boot.json()["password"]
        settings = load_settings(DashboardSettings, environ=env | {"ATLAS_PORTAL_URL": portal.url})
        with ServerThread(dashboard_app(settings, collect=False)) as dashboard:
            login = httpx.post(f"{portal.url}/api/auth/login", json={"username": "admin", "password": password})
            yield Site(portal.url, dashboard.url, password, {"Authorization": f"Bearer {login.json()['access_token']}"})


def wait_for_usage(site: Site, headers: dict[str, str], requests: int) -> None:
    deadline = time.monotonic() + 15
    while httpx.get(f"{site.portal}/api/usage", headers=headers).json()["requests"] < requests:
        assert time.monotonic() < deadline, "the usage was never rolled up"
        time.sleep(0.1)
