"""The portal's web UI in a real headless Chromium: log in, create a key, see it listed, revoke it, copy the
OpenCode config."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atlas_core.settings import load_settings
from atlas_portal.app import create_app
from atlas_portal.settings import Settings
from tests.conftest import PROXY_TOKEN, RECOVERY_TOKEN, ServerThread

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def portal(service_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    env = service_env | {"ATLAS_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
                         "ATLAS_PUBLIC_API_URL": "http://127.0.0.1:8000/v1"}
    with ServerThread(create_app(load_settings(Settings, environ=env))) as server:
        boot = httpx.post(f"{server.url}/internal/bootstrap", headers={"Authorization": f"Bearer {RECOVERY_TOKEN}"})
        yield server.url, boot.json()["password"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_login_create_list_revoke_and_copy_opencode_config(portal: tuple[str, str], tmp_path: Path) -> None:
    url, password = portal
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/")

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
        assert "atlas" in provider["models"]
        page.screenshot(path=str(tmp_path / "portal.png"), full_page=True)
        assert errors == []
        browser.close()
