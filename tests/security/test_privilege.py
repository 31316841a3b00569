"""Least privilege between services: each credential opens only what its holder needs, each service gets its
own Redis user with only the commands and keys it needs, and each service binds its own address."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from atlas_cli.plan import build_plan
from atlas_cli.runner import prepare
from atlas_core.settings import load_settings
from atlas_rag.app import create_app as rag_app
from atlas_rag.settings import Settings as RagSettings
from tests.conftest import METRICS_TOKEN

TASK = {"prompt": "Write add(a, b).", "tests": [{"assert": "assert add(2, 3) == 5"}]}


def test_the_metrics_credential_opens_nothing_else(service_env: dict[str, str]) -> None:
    with TestClient(rag_app(load_settings(RagSettings, environ=service_env))) as rag:
        scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        assert rag.get("/metrics", headers=scrape).status_code == 200
        claimed = rag.post("/v1/tasks", json=TASK, headers=scrape | {"X-Atlas-User-Id": "1"})
        assert claimed.status_code == 401, claimed.text  # a scraper cannot act as a user


def test_the_sandbox_holds_no_credential_another_service_accepts(platform_env: dict[str, str]) -> None:
    plan = {spec.name: spec for spec in build_plan(prepare({}, None))}
    sandbox = plan["sandbox"].env
    for name in ("api-portal", "rag-api", "llm-proxy"):
        shared = {k for k in sandbox if k in plan[name].env and sandbox[k] == plan[name].env[k]
                  and ("TOKEN" in k or "KEY" in k or "SECRET" in k)}
        assert shared <= {"ATLAS_METRICS_TOKEN"}, (name, shared)


def test_redis_has_a_user_per_service_and_the_sandbox_reaches_only_its_replay_keys(
        platform_env: dict[str, str]) -> None:
    plan = {spec.name: spec for spec in build_plan(prepare({}, None))}
    conf = next(text for path, text in plan["redis"].files.items() if Path(path).name == "redis.conf")
    assert re.search(r"^maxmemory \d+mb$", conf, flags=re.MULTILINE)
    users = {m.group(1): m.group(0) for m in re.finditer(r"^user (\S+) .*$", conf, flags=re.MULTILINE)}
    assert {"sandbox", "llm-proxy", "api-portal", "rag-api", "task-worker"} <= set(users)
    assert "~atlas:sandbox:jti:*" in users["sandbox"] and users["sandbox"].count("~") == 1
    assert plan["sandbox"].env["ATLAS_REDIS_USER"] == "sandbox"


def test_each_service_binds_its_own_address(platform_env: dict[str, str]) -> None:
    plan = {spec.name: spec for spec in build_plan(prepare({"ATLAS_PROXY_HOST": "0.0.0.0"}, None))}
    assert plan["llm-proxy"].host == "0.0.0.0"
    assert {spec.host for name, spec in plan.items() if name != "llm-proxy"} == {"127.0.0.1"}


def test_each_credential_is_refused_outside_what_it_is_for(service_env: dict[str, str]) -> None:
    """The matrix: who may call what. Every internal route refuses every credential but its own."""
    from atlas_portal.app import create_app as portal_app
    from atlas_portal.settings import Settings as PortalSettings
    from atlas_sandbox.app import create_app as sandbox_app
    from atlas_sandbox.settings import Settings as SandboxSettings
    from tests.conftest import PROXY_TOKEN, RECOVERY_TOKEN

    bearer = {name: {"Authorization": f"Bearer {token}"} for name, token in
              (("metrics", METRICS_TOKEN), ("proxy", PROXY_TOKEN), ("recovery", RECOVERY_TOKEN))}
    env = service_env | {"ATLAS_DATABASE_URL": f"sqlite:///{service_env['ATLAS_STATE_DIR']}-portal.db"}
    routes: dict[str, list[tuple[str, str, dict[str, Any] | None, str]]] = {
        # service -> (method, path, body, the one credential it takes)
        "portal": [("POST", "/internal/keys/validate", {"key": "sk-llm-x"}, "proxy"),
                   ("GET", "/internal/models", None, "proxy"),
                   ("POST", "/internal/bootstrap", None, "recovery"),
                   ("POST", "/internal/recover", {"username": "nobody"}, "recovery"),
                   ("GET", "/metrics", None, "metrics")],
        "rag": [("POST", "/v1/tasks", TASK, "proxy"), ("GET", "/v1/queue/stats", None, "proxy"),
                ("GET", "/internal/queue/stats", None, "metrics"), ("GET", "/metrics", None, "metrics")],
        "sandbox": [("GET", "/languages", None, "metrics"), ("GET", "/metrics", None, "metrics")],
    }
    apps = {"portal": portal_app(load_settings(PortalSettings, environ=env)),
            "rag": rag_app(load_settings(RagSettings, environ=env)),
            "sandbox": sandbox_app(load_settings(SandboxSettings, environ=env))}
    for service, calls in routes.items():
        with TestClient(apps[service]) as client:
            for method, path, body, owner in calls:
                for name, headers in bearer.items():
                    answer = client.request(method, path, json=body, headers=headers | {"X-Atlas-User-Id": "1"})
                    refused = answer.status_code == 401 and "needs a service credential" in answer.text
                    assert refused == (name != owner), (service, path, name, answer.text)
                    if refused:  # it names the credential it needs
                        assert f"ATLAS_{owner.upper()}_TOKEN" in answer.json()["error"]["message"]
        # the sandbox's own routes take capability tokens only: no service credential opens them
        if service == "sandbox":
            for headers in bearer.values():
                assert client.post("/execute", json={"code": "print(1)"}, headers=headers).status_code == 401
