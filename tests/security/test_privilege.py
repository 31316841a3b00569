"""Least privilege between services: each credential opens only what its holder needs, each service gets its
own Redis user with only the commands and keys it needs, and each service binds its own address."""

from __future__ import annotations

import re
from pathlib import Path

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
