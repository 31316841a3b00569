"""The task API through the proxy to a real rag-api: the key decides who the owner is (a client cannot claim
another), rag-api's answers (404 included) come back as they are, events stream through."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import ServerThread
from tests.proxy.conftest import Stack

TASK = {"prompt": "Write add(a, b).", "tests": [{"assert": "assert add(2, 3) == 5"}], "priority": "p0"}


@pytest.fixture(scope="module")
def proxy(rag_proxy: str) -> str:
    return rag_proxy


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


def _user_key(stack: Stack, name: str, **limits: Any) -> str:
    """A key of a new non-admin user whose per-user limits are set to ``limits``."""
    password = f"{name}-password-123"
    user = httpx.post(f"{stack.portal}/api/auth/register", headers=stack.admin,
                      json={"username": name, "email": f"{name}@example.com", "password": password})
    assert user.status_code == 201, user.text
    if limits:
        assert httpx.patch(f"{stack.portal}/api/users/{user.json()['id']}", headers=stack.admin,
                           json=limits).status_code == 200
    token = httpx.post(f"{stack.portal}/api/auth/login", json={"username": name, "password": password})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    key: str = httpx.post(f"{stack.portal}/api/keys", headers=headers, json={"name": "k"}).json()["key"]
    return key


def _name(prefix: str) -> str:
    import time

    return f"{prefix}-{time.monotonic_ns() % 10**9}"


def test_one_user_cannot_fill_the_queue(stack: Stack, proxy: str) -> None:
    greedy = _user_key(stack, _name("greedy"), max_queued_tasks=2)
    codes = [call(proxy, greedy, "POST", "/v1/tasks", json=TASK).status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    assert call(proxy, stack.key()["key"], "POST", "/v1/tasks", json=TASK).status_code == 202  # others still can


def test_a_task_that_may_spend_more_than_the_keys_tokens_per_minute_is_refused(stack: Stack, proxy: str) -> None:
    key = stack.key(tokens_per_min=5_000)["key"]
    answer = call(proxy, key, "POST", "/v1/tasks", json=TASK | {"budget": {"k": 10, "max_tokens": 4096}})
    assert answer.status_code == 429, answer.text


def test_task_records_have_a_byte_bound(stack: Stack, proxy: str) -> None:
    # each test within the per-field limit, the whole spec far over what a task record may keep
    tests = [{"assert": f"assert add({i}, 0) == {i}  # " + "x" * 20_000} for i in range(100)]
    answer = call(proxy, stack.key()["key"], "POST", "/v1/tasks", json=TASK | {"tests": tests})
    assert answer.status_code == 413, answer.text
    assert "task" in answer.json()["error"]["message"]


def test_event_streams_have_a_declared_per_user_cap(stack: Stack, proxy: str) -> None:
    key = _user_key(stack, _name("streams"), max_streams=2)
    task_id = call(proxy, key, "POST", "/v1/tasks", json=TASK).json()["task_id"]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=30) as client:
        opened = [client.send(client.build_request("GET", f"{proxy}/v1/tasks/{task_id}/events", headers=headers),
                              stream=True) for _ in range(3)]
        try:
            codes = [r.status_code for r in opened]
            assert codes == [200, 200, 429]
            assert int(opened[2].headers["retry-after"]) >= 1
        finally:
            for r in opened:
                r.close()


def test_revoking_a_key_cancels_its_queued_tasks(stack: Stack, proxy: str) -> None:
    created = stack.key()
    task_id = call(proxy, created["key"], "POST", "/v1/tasks", json=TASK).json()["task_id"]
    assert httpx.delete(f"{stack.portal}/api/keys/{created['id']}", headers=stack.admin).status_code == 204
    import time

    deadline = time.monotonic() + 5
    with redis_client(stack) as client:
        while client.hget(f"atlas:task:{task_id}", "status") != b"cancelled":
            assert time.monotonic() < deadline, client.hgetall(f"atlas:task:{task_id}")
            time.sleep(0.05)


def redis_client(stack: Stack) -> Any:
    import redis

    return redis.Redis.from_url(stack.env["ATLAS_REDIS_URL"], password=stack.env["ATLAS_REDIS_PASSWORD"])


def test_queue_stats_show_a_key_holder_no_hosts_or_redis_settings(stack: Stack, proxy: str) -> None:
    with redis_client(stack) as client:
        client.hset("atlas:tasks:workers", "gpu-box-7-1234-abcd", json.dumps({"seen": 1e12, "running": 0}))
    stats = call(proxy, _user_key(stack, _name("stats")), "GET", "/v1/queue/stats")
    assert stats.status_code == 200
    assert "gpu-box-7" not in stats.text and "redis" not in stats.json()


def test_event_streams_have_a_pool_of_their_own_and_never_starve_requests(stack: Stack, rag_url: str) -> None:
    key = stack.key()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    with ServerThread(stack.proxy_app(ATLAS_RAG_URL=rag_url, ATLAS_PROXY_STREAM_CONNECTIONS="1",
                                      ATLAS_PROXY_POOL_WAIT_S="0.5")) as server:
        task_id = call(server.url, key, "POST", "/v1/tasks", json=TASK).json()["task_id"]
        with httpx.Client(timeout=30) as client:
            held = client.send(client.build_request("GET", f"{server.url}/v1/tasks/{task_id}/events",
                                                    headers=headers), stream=True)
            try:
                assert held.status_code == 200
                more = client.get(f"{server.url}/v1/tasks/{task_id}/events", headers=headers)
                assert more.status_code == 503 and more.headers["retry-after"] == "2", more.text
                # the stream pool is full; ordinary requests have their own and still go through
                assert client.get(f"{server.url}/v1/tasks/{task_id}", headers=headers).status_code == 200
                chat = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
                assert client.post(f"{server.url}/v1/chat/completions", json=chat, headers=headers).status_code == 200
            finally:
                held.close()
