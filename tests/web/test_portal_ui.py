"""The portal's web UI in a real headless Chromium: log in, create a key, see it listed, revoke it, copy the
OpenCode config (chat models only); usage by name."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from atlas_core.schemas import USAGE_STREAM
from atlas_core.settings import load_settings
from atlas_portal.app import create_app
from atlas_portal.settings import Settings
from tests.conftest import PROXY_TOKEN, RECOVERY_TOKEN, RedisServer, ServerThread

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")


PROXY = {"Authorization": f"Bearer {PROXY_TOKEN}"}


@contextmanager
def browser_page(url: str, **options: Any) -> Iterator[tuple[Any, list[str]]]:
    """Debian's Chromium, headless, on ``url``: the page and the script errors it raised."""
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = browser.new_page(**options)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        yield page, errors
        browser.close()


@pytest.fixture
def portal(service_env: dict[str, str], tmp_path: Path, llm: ServerThread) -> Iterator[tuple[str, str]]:
    """The portal, with the scripted llama-server as its embedding server: its model ("fake") is an embed model
    the OpenCode config must leave out. Yields once the registry lists it, so the UI sees it too."""
    env = service_env | {"ATLAS_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
                         "ATLAS_PUBLIC_API_URL": "http://127.0.0.1:8000/v1", "ATLAS_EMBED_URL": llm.url}
    with ServerThread(create_app(load_settings(Settings, environ=env))) as server:
        boot = httpx.post(f"{server.url}/internal/bootstrap", headers={"Authorization": f"Bearer {RECOVERY_TOKEN}"})
        deadline = time.monotonic() + 10
        while "fake" not in {m["upstream"] for m in httpx.get(f"{server.url}/internal/models", headers=PROXY).json()}:
            assert time.monotonic() < deadline, "the registry never listed the embedding server's model"
            time.sleep(0.1)
        yield server.url, boot.json()["password"]


def record_usage(redis_server: RedisServer, url: str, password: str, key_name: str) -> int:
    """A new key of the admin's that the proxy has metered one request for, rolled up; returns the key's id."""
    token = httpx.post(f"{url}/api/auth/login", json={"username": "admin", "password": password}).json()
    admin = {"Authorization": f"Bearer {token['access_token']}"}
    key = httpx.post(f"{url}/api/keys", headers=admin, json={"name": key_name}).json()
    with redis_server.client() as client:
        client.xadd(USAGE_STREAM, {"ts": time.time(), "key_id": key["id"], "user_id": key["user_id"],
                                   "model": "atlas", "status": 200, "prompt_tokens": 3, "completion_tokens": 4,
                                   "latency_ms": 5})
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/api/usage", headers=admin).json()["requests"] < 1:
        assert time.monotonic() < deadline, "the usage was never rolled up"
        time.sleep(0.1)
    key_id: int = key["id"]
    return key_id


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_login_create_list_revoke_and_copy_opencode_config(portal: tuple[str, str], tmp_path: Path) -> None:
    url, password = portal
    with browser_page(f"{url}/") as (page, errors):

        page.fill("#login-name", "admin")
        page.fill("#login-password", "wrong password")
        page.click("#login-form button[type=submit]")
        playwright_api.expect(page.locator("#login-error")).to_contain_text("wrong username/email or password")

        page.fill("#login-password", password)
        page.click("#login-form button[type=submit]")
        playwright_api.expect(page.locator("#who")).to_have_text("admin (admin)")
        playwright_api.expect(page.locator("#keys tbody tr")).to_have_count(1)  # the first key, from bootstrap

        page.fill("#key-name", "my laptop")
        page.fill("#key-rpm", "30")
        page.click("#key-form button[type=submit]")
        playwright_api.expect(page.locator("#new-key-value")).to_contain_text("sk-llm-")
        new_key = page.locator("#new-key-value").inner_text()
        row = page.locator("#keys tbody tr", has_text="my laptop")
        playwright_api.expect(row).to_have_count(1)
        playwright_api.expect(row.locator("td").nth(3)).to_have_text("30")
        playwright_api.expect(row.locator(".status")).to_have_text("active")
        assert new_key.startswith(row.locator("td").nth(1).inner_text().rstrip("…"))

        row.locator("button.toggle").click()
        playwright_api.expect(row.locator(".status")).to_have_text("revoked")
        validated = httpx.post(f"{url}/internal/keys/validate", json={"key": new_key},
                               headers={"Authorization": f"Bearer {PROXY_TOKEN}"})
        assert validated.status_code == 401

        page.click("#copy-opencode")
        config = json.loads(page.locator("#opencode-config").input_value())
        provider = config["provider"]["atlas"]
        assert provider["options"] == {"baseURL": "http://127.0.0.1:8000/v1", "apiKey": "{env:ATLAS_API_KEY}"}
        assert "atlas" in provider["models"] and "fake" not in provider["models"]  # no embedding model
        page.screenshot(path=str(tmp_path / "portal.png"), full_page=True)
        assert errors == []


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_usage_shows_names_and_opencode_lists_chat_models_only(
    portal: tuple[str, str], redis_server: RedisServer
) -> None:
    url, password = portal
    key_id = record_usage(redis_server, url, password, "<b>ci</b> & co")  # markup must show as text
    with browser_page(f"{url}/") as (page, errors):

        page.fill("#login-name", "admin")
        page.fill("#login-password", password)
        page.click("#login-form button[type=submit]")
        row = page.locator("#usage tbody tr")
        playwright_api.expect(row).to_have_count(1)
        playwright_api.expect(row.locator("td").nth(1)).to_have_text("admin")
        playwright_api.expect(row.locator("td").nth(2)).to_have_text("<b>ci</b> & co")
        playwright_api.expect(row.locator("td").nth(2)).to_have_attribute("title", f"key id {key_id}")
        playwright_api.expect(page.locator("#usage b")).to_have_count(0)

        config = json.loads(page.locator("#opencode-config").input_value())
        assert list(config["provider"]["atlas"]["models"]) == ["atlas"]  # not "fake", the embedding model
        assert errors == []
