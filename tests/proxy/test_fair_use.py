"""Token accounting and fair use through the proxy: every path is metered with the tokens really spent, every
reservation covers what the request may spend, and one user cannot take what belongs to everyone."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import redis

from tests.proxy.conftest import Stack


def _redis(stack: Stack) -> redis.Redis:
    return redis.Redis.from_url(stack.env["ATLAS_REDIS_URL"], password=stack.env["ATLAS_REDIS_PASSWORD"])


def metered(stack: Stack, key_id: int, count: int = 1, timeout_s: float = 10.0) -> list[dict[str, str]]:
    """The usage entries of one key, once ``count`` of them are there."""
    deadline = time.monotonic() + timeout_s
    with _redis(stack) as client:
        while True:
            entries = [{k.decode(): v.decode() for k, v in fields.items()}
                       for _, fields in client.xrange("atlas:usage")]
            mine = [e for e in entries if e.get("key_id") == str(key_id)]
            if len(mine) >= count or time.monotonic() > deadline:
                return mine
            time.sleep(0.05)


def post(stack: Stack, key: str, path: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{stack.proxy}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      **kwargs)


def test_a_streamed_atlas_chat_without_include_usage_is_metered_with_what_rag_api_spent(stack: Stack) -> None:
    created = stack.key()
    with httpx.stream("POST", f"{stack.proxy}/v1/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {created['key']}"},
                      json={"model": "atlas", "stream": True,
                            "messages": [{"role": "user", "content": "Write add(a, b)."}]}) as answer:
        lines = [line for line in answer.iter_lines() if line.startswith("data: {")]
    # the client did not ask for usage, so it gets no usage chunk ...
    assert all(json.loads(line[6:]).get("usage") is None for line in lines)
    # ... but the key is charged what rag-api reported spending, not an estimate of one streamed piece
    entry = metered(stack, created["id"])[0]
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == ("693", "188")


def test_an_atlas_chat_reserves_what_its_budget_may_spend(stack: Stack) -> None:
    key = stack.key(tokens_per_min=10_000)["key"]
    answer = post(stack, key, "/v1/chat/completions", {
        "model": "atlas", "messages": [{"role": "user", "content": "Write add(a, b)."}],
        "atlas": {"budget": {"k": 20, "max_tokens": 8192}}})
    assert answer.status_code == 429, answer.text  # 20 x 8,192 completion tokens cannot fit in 10,000 a minute
    assert "tokens per minute" in answer.json()["error"]["message"]


def test_max_completion_tokens_reaches_the_model_server(stack: Stack) -> None:
    key = stack.key()["key"]
    before = len(stack.llama.state.requests)
    hi = [{"role": "user", "content": "hi"}]
    body = {"model": "fake-chat", "max_completion_tokens": 7, "messages": hi}
    answer = post(stack, key, "/v1/chat/completions", body)
    assert answer.status_code == 200
    sent = stack.llama.state.requests[before]["body"]
    assert sent["max_tokens"] == 7  # llama.cpp knows max_tokens; without it generation runs to the context's end


def test_a_renamed_model_reaches_the_model_server_by_its_own_name(stack: Stack) -> None:
    key = stack.key()["key"]
    rename = httpx.patch(f"{stack.portal}/api/models/fake-chat", headers=stack.admin,
                         json={"display_name": "renamed-chat"})
    assert rename.status_code == 200, rename.text
    try:
        body = {"model": "renamed-chat", "max_completion_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        deadline = time.monotonic() + 10
        while (answer := post(stack, key, "/v1/chat/completions", body)).status_code == 404:
            assert time.monotonic() < deadline, "the proxy never learned the new name"
            time.sleep(0.1)
        assert answer.status_code == 200, answer.text
        sent = stack.llama.state.requests[-1]["body"]
        assert sent["model"] == "fake-chat" and sent["max_tokens"] == 5 and "max_completion_tokens" not in sent
    finally:
        httpx.patch(f"{stack.portal}/api/models/fake-chat", headers=stack.admin, json={"display_name": "fake-chat"})
        deadline = time.monotonic() + 10
        while post(stack, key, "/v1/chat/completions", {"model": "fake-chat", "messages": [
                {"role": "user", "content": "hi"}]}).status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.1)


def test_a_request_without_max_tokens_cannot_generate_more_than_was_reserved(stack: Stack) -> None:
    key = stack.key()["key"]
    before = len(stack.llama.state.requests)
    answer = post(stack, key, "/v1/chat/completions", {"model": "fake-chat",
                                                        "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200
    assert stack.llama.state.requests[before]["body"]["max_tokens"] == 1024  # ATLAS_PROXY_DEFAULT_MAX_TOKENS


def test_the_prompt_estimate_counts_tools(stack: Stack) -> None:
    key = stack.key(tokens_per_min=3_000)["key"]
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": "x" * 2_000,
                                               "parameters": {"type": "object", "properties": {}}}}
             for i in range(10)]
    answer = post(stack, key, "/v1/chat/completions", {"model": "fake-chat", "max_tokens": 10, "tools": tools,
                                                        "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 429, answer.text  # 20,000 characters of tools are about 5,000 tokens


def _user(stack: Stack, name: str, **limits: Any) -> tuple[int, dict[str, str]]:
    """A new (non-admin) user with these per-user limits; their id and login headers."""
    password = f"{name}-password-123"
    created = httpx.post(f"{stack.portal}/api/auth/register", headers=stack.admin,
                         json={"username": name, "email": f"{name}@example.com", "password": password})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    if limits:
        changed = httpx.patch(f"{stack.portal}/api/users/{user_id}", headers=stack.admin, json=limits)
        assert changed.status_code == 200, changed.text
    token = httpx.post(f"{stack.portal}/api/auth/login", json={"username": name, "password": password})
    return user_id, {"Authorization": f"Bearer {token.json()['access_token']}"}


def test_a_users_concurrency_is_shared_by_all_their_keys(stack: Stack) -> None:
    _, headers = _user(stack, f"conc-{time.monotonic_ns() % 10**8}", max_concurrent=1)
    keys = [httpx.post(f"{stack.portal}/api/keys", headers=headers, json={"name": f"k{i}"}).json()["key"]
            for i in range(2)]
    body = {"model": "fake-chat", "user": "slow", "messages": [{"role": "user", "content": "hi"}]}

    async def both() -> list[int]:
        import asyncio

        async with httpx.AsyncClient(timeout=30) as client:
            answers = await asyncio.gather(*(client.post(f"{stack.proxy}/v1/chat/completions", json=body,
                                                         headers={"Authorization": f"Bearer {k}"}) for k in keys))
        return sorted(a.status_code for a in answers)

    import asyncio

    assert asyncio.run(both()) == [200, 429]  # a second key is not a second slot
