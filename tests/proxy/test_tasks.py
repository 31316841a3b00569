"""The task API through the proxy to a real rag-api: the key decides who the owner is (a client cannot claim
another), rag-api's answers (404 included) come back as they are, events stream through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from atlas_core.settings import load_settings
from atlas_rag.app import create_app as rag_app
from atlas_rag.settings import Settings as RagSettings
from tests.conftest import SANDBOX_SIGNING, ServerThread, free_port
from tests.proxy.conftest import Stack

TASK = {"prompt": "Write add(a, b).", "tests": [{"assert": "assert add(2, 3) == 5"}], "priority": "p0"}


@pytest.fixture(scope="module")
def proxy(stack: Stack) -> Iterator[str]:
    """A proxy whose rag-api is the real one (tasks need no model or sandbox until a worker runs them)."""
    env = stack.env | {"ATLAS_SANDBOX_SIGNING_KEY": SANDBOX_SIGNING, "ATLAS_LLAMA_URL": f"http://127.0.0.1:{free_port()}",
                       "ATLAS_SANDBOX_URL": f"http://127.0.0.1:{free_port()}"}
    with ServerThread(rag_app(load_settings(RagSettings, environ=env))) as rag, \
            ServerThread(stack.proxy_app(ATLAS_RAG_URL=rag.url)) as server:
        yield server.url


def call(proxy: str, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{proxy}{path}", headers={"Authorization": f"Bearer {key}"} | kwargs.pop(
        "headers", {}), timeout=30, **kwargs)


def test_submit_read_follow_cancel_through_the_proxy(stack: Stack, proxy: str) -> None:
    key = stack.key()
    # a client naming another owner is ignored: the proxy says who the key belongs to
    submitted = call(proxy, key["key"], "POST", "/v1/tasks", json=TASK, headers={"X-Atlas-User-Id": "999"})
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]
    assert submitted.headers["location"] == f"/v1/tasks/{task_id}"

    task = call(proxy, key["key"], "GET", f"/v1/tasks/{task_id}").json()
    assert task["status"] == "queued" and task["priority"] == "p0" and task["attempts"] == []
    listed = call(proxy, key["key"], "GET", "/v1/tasks?limit=5").json()["data"]
    assert task_id in [t["task_id"] for t in listed]
    assert call(proxy, key["key"], "GET", "/v1/queue/stats").json()["queued"]["p0"] >= 1

    cancelled = call(proxy, key["key"], "DELETE", f"/v1/tasks/{task_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    with httpx.stream("GET", f"{proxy}/v1/tasks/{task_id}/events", timeout=30,
                      headers={"Authorization": f"Bearer {key['key']}"}) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        kinds = [json.loads(line[6:])["type"] for line in answer.iter_lines() if line.startswith("data: ")]
    assert kinds == ["queued", "done"]
    assert call(proxy, key["key"], "GET", f"/v1/tasks/{task_id}").json()["stop_reason"] == "CANCELLED"


def test_errors_keep_their_status_and_field(stack: Stack, proxy: str) -> None:
    key = stack.key()["key"]
    missing = call(proxy, key, "GET", "/v1/tasks/0123456789abcdef")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "task_not_found"
    bad = call(proxy, key, "POST", "/v1/tasks", json=TASK | {"priority": "urgent"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "priority"
    assert call(proxy, "sk-llm-nope", "GET", "/v1/queue/stats").status_code == 401
    restricted = stack.key(allowed_models=["fake-chat"])["key"]
    refused = call(proxy, restricted, "POST", "/v1/tasks", json=TASK)
    assert refused.status_code == 403 and "atlas" in refused.json()["error"]["message"]
