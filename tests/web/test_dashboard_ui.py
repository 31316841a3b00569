"""The dashboard in a real headless Chromium, over a real platform (``atlas up`` with the default models): the
test's own traffic (a chat, a stream, a solve, a task, rejected requests, a backend error) must show in every
panel; a non-admin sees only their own usage; signed-out visitors go to sign-in; a hostile key name stays text.

With SCREENSHOTS_DIR=DIR it saves the admin's view there (docs/images/ holds the committed ones)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_atlas_up import atlas, status
from tests.web.test_portal_ui import CHROMIUM, browser_page, playwright_api

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium")]
HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'
MODEL = "SmolLM2-135M-Instruct.Q4_1"
PROBLEM = "Write a Python function nth_prime(n) that returns the n-th prime number (nth_prime(1) == 2)."
TESTS = [{"assert": "nth_prime(1) == 2"}, {"assert": "nth_prime(5) == 11"}]
# Panels that count what the model writes (checks it parsed, plans it numbered): the 135M default model may write
# none in this traffic, so they may stay empty here; tests/rag/test_api.py moves their metrics with a scripted one.
MODEL_DEPENDENT = {"checks", "plans"}
# Lens panels that need published weights (a version loaded or refused, candidates scored): this platform has none,
# so they stay empty; tests/dashboard/test_dashboard_api.py fills them. The Lens's other panels fill here: its
# gauges read 0 ("none") and every solve's training record is counted (skipped: learning is off by default).
NEEDS_LENS_WEIGHTS = {"lens-picks", "lens-reloads"}
# A pattern is written only from a verified answer, which the 135M model may not give here; tests/rag/test_router.py
# writes one with a scripted model, and tests/dashboard/test_dashboard_api.py fills the panel.
MODEL_DEPENDENT |= {"pattern-writes"}
# A project's background fails only when the embedding server or the model does at that moment, which this traffic
# cannot time; tests/dashboard/test_projects_panels.py fills the panel.
MODEL_DEPENDENT |= {"project-errors"}


def post(url: str, key: str, body: dict[str, Any], timeout: float = 300) -> httpx.Response:
    return httpx.post(url, headers={"Authorization": f"Bearer {key}"}, json=body, timeout=timeout)


def traffic(proxy: str, admin_key: str, services: dict[str, Any], user_key: str, hostile_key: str) -> str:
    """Every kind of request the panels count, through the front door; returns the task's id once it ended."""
    project_traffic(proxy, user_key)
    chat = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello."}]}
    assert post(f"{proxy}/v1/chat/completions", admin_key, chat).status_code == 200
    with httpx.stream("POST", f"{proxy}/v1/chat/completions", headers={"Authorization": f"Bearer {admin_key}"},
                      json=chat | {"stream": True}, timeout=120) as streamed:
        assert streamed.status_code == 200
        streamed.read()
    # A test the statement contradicts: whatever the model writes fails it, so a repair round surely runs
    solved = post(f"{proxy}/v1/solve", admin_key, {"problem": "Write a Python function answer() that returns 41.",
                                                   "tests": [{"assert": "answer() == 42"}],
                                                   "budget": {"k": 2, "max_tokens": 64, "repair_rounds": 1}})
    assert solved.status_code == 200 and solved.json()["repair_rounds"] == 1, solved.text
    # The same, routed (no k): it fails every route, so it escalates fast -> standard -> deep (ESCALATE=budget)
    routed = post(f"{proxy}/v1/solve", admin_key, {"problem": "Write a Python function answer() that returns 41.",
                                                   "tests": [{"assert": "answer() == 42"}],
                                                   "budget": {"max_tokens": 64, "repair_rounds": 0}})
    assert routed.status_code == 200 and len(routed.json()["route"]["steps"]) > 1, routed.text
    task = post(f"{proxy}/v1/tasks", admin_key, {"prompt": PROBLEM, "tests": TESTS, "max_attempts": 1,
                                                 "budget": {"k": 1, "max_tokens": 64, "repair_rounds": 0}})
    assert task.status_code == 202, task.text
    assert post(f"{proxy}/v1/chat/completions", "sk-llm-wrong", chat).status_code == 401
    assert post(f"{proxy}/v1/chat/completions", hostile_key, chat).status_code == 200
    assert post(f"{proxy}/v1/chat/completions", hostile_key, chat).status_code == 429  # its limit: 1 a minute
    assert post(f"{proxy}/v1/chat/completions", user_key, chat).status_code == 200
    # A backend error: the embedding server killed, asked at once (the supervisor brings it back)
    os.kill(services["embedding-server"]["pid"], signal.SIGKILL)
    embed = post(f"{proxy}/v1/embeddings", admin_key, {"model": "all-MiniLM-L6-v2", "input": "x"})
    assert embed.status_code == 503, embed.text
    deadline = time.monotonic() + 300
    task_id = task.json()["task_id"]
    while httpx.get(f"{proxy}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {admin_key}"},
                    timeout=10).json()["status"] not in ("succeeded", "failed", "dead"):
        assert time.monotonic() < deadline, "the task never finished"
        time.sleep(1)
    return str(task_id)


def project_traffic(proxy: str, key: str) -> None:
    """A project synced, searched by name and by the model's tree walk, and left to the background until its
    pieces are embedded (before the embedding server is killed below): the Projects panels' data."""
    headers = {"Authorization": f"Bearer {key}"}
    created = httpx.post(f"{proxy}/v1/projects", headers=headers, json={"name": "demo"}, timeout=30)
    assert created.status_code == 201, created.text
    base = f"{proxy}/v1/projects/{created.json()['id']}"
    source = "def add_numbers(a, b):\n    return a + b\n"
    synced = httpx.post(f"{base}/files", headers=headers, timeout=60,
                        json={"files": [{"path": "calc/ops.py", "content": source}]})
    assert synced.status_code == 200 and synced.json()["written"] == 1, synced.text
    assert httpx.post(f"{base}/search", headers=headers, json={"query": "add_numbers"}, timeout=30).status_code == 200
    tree = httpx.post(f"{base}/search", headers=headers, json={"query": "sum two numbers", "mode": "tree"},
                      timeout=300)
    assert tree.status_code == 200, tree.text
    deadline = time.monotonic() + 120
    while httpx.post(f"{base}/search", headers=headers, json={"query": "sum two numbers"},
                     timeout=30).json()["mode"] != "hybrid":
        assert time.monotonic() < deadline, "the project was never embedded"
        time.sleep(1)


def sign_in(page: Any, url: str, name: str, password: str) -> None:
    page.goto(f"{url}/")
    playwright_api.expect(page).to_have_url(f"{url}/login")
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#login-form button[type=submit]")
    playwright_api.expect(page).to_have_url(f"{url}/")


def test_the_dashboard_shows_the_platform_working(platform_env: dict[str, str], tmp_path: Path) -> None:
    env = platform_env | {"ATLAS_DASHBOARD_SCRAPE_S": "1", "ATLAS_WORKER_COUNT": "1", "ATLAS_ROUTER_ESCALATE": "budget",
                          "ATLAS_RAG_DEEP_K": "6", "ATLAS_RAG_DEEP_PLANS": "0"}
    state_dir = Path(env["ATLAS_STATE_DIR"])
    try:
        up = atlas("up", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        services = {row["name"]: row for row in status(env)["services"]}
        proxy, portal, dashboard = (services[n]["url"] for n in ("llm-proxy", "api-portal", "dashboard"))
        assert f"Dashboard: {dashboard} (sign in" in up.stdout  # where to look, said once it is up
        admin = json.loads((state_dir / "admin.json").read_text())
        token = httpx.post(f"{portal}/api/auth/login", json={"username": "admin", "password": admin["password"]})
        admin_headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        hostile = httpx.post(f"{portal}/api/keys", headers=admin_headers, json={"name": HOSTILE, "rate_limit": 1})
        assert hostile.status_code == 201, hostile.text
        assert httpx.post(f"{portal}/api/auth/register", headers=admin_headers, json={
            "username": "dana", "email": "dana@example.org", "password": "dana's long password"}).status_code == 201
        dana = httpx.post(f"{portal}/api/auth/login", json={"username": "dana", "password": "dana's long password"})
        dana_key = httpx.post(f"{portal}/api/keys", json={"name": "danas-key"},
                              headers={"Authorization": f"Bearer {dana.json()['access_token']}"}).json()
        task_id = traffic(proxy, admin["key"], services, dana_key["key"], hostile.json()["key"])

        with browser_page(f"{dashboard}/", viewport={"width": 1400, "height": 1000}) as (page, errors):
            sign_in(page, dashboard, "admin", admin["password"])
            playwright_api.expect(page.locator("#who")).to_have_text("admin (admin)")
            panels = page.locator("section.panel")
            ids = panels.evaluate_all("nodes => nodes.map(n => n.dataset.panel)")
            assert len(ids) >= 20
            assert set(ids) >= MODEL_DEPENDENT | NEEDS_LENS_WEIGHTS
            for panel_id in set(ids) - MODEL_DEPENDENT - NEEDS_LENS_WEIGHTS:  # the others fill with this traffic
                playwright_api.expect(page.locator(f'section.panel[data-panel="{panel_id}"]')).to_have_attribute(
                    "data-state", "ready", timeout=60_000)
            lens_version = page.locator('section[data-panel="lens-version"] .summary')
            playwright_api.expect(lens_version).to_contain_text("none")  # version 0: no weights live
            usage = page.locator('section[data-panel="usage"]')
            playwright_api.expect(usage).to_contain_text(HOSTILE)  # shown as text, never run
            assert page.title() == "ATLAS dashboard" and page.locator("section img").count() == 0
            playwright_api.expect(usage).to_contain_text("danas-key")
            playwright_api.expect(page.locator('section[data-panel="recent"]')).to_contain_text(task_id[:12])
            if os.environ.get("SCREENSHOTS_DIR"):
                page.screenshot(path=str(Path(os.environ["SCREENSHOTS_DIR"]) / "dashboard-admin.png"),
                                full_page=True)
            page.click("#logout")
            playwright_api.expect(page).to_have_url(f"{dashboard}/login")

            # dana sees her own key's usage, none of the admin's, and no platform panels
            sign_in(page, dashboard, "dana", "dana's long password")
            own = page.locator('section[data-panel="usage"]')
            playwright_api.expect(own).to_have_attribute("data-state", "ready", timeout=30_000)
            playwright_api.expect(own).to_contain_text("danas-key")
            assert HOSTILE not in own.inner_text()
            assert page.locator("section.panel").evaluate_all("n => n.map(x => x.dataset.panel)") == ["usage",
                                                                                                     "recent"]
            assert errors == []
    finally:
        down = atlas("down", env=env, timeout=120)
        assert down.returncode == 0
