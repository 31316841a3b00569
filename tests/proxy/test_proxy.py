"""llm-proxy through the official OpenAI client and raw HTTP: auth, routing, streaming, limits, errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ServerThread, free_port
from tests.proxy.conftest import Stack

_clients: list[openai.OpenAI] = []


def client(stack: Stack, key: str) -> openai.OpenAI:
    made = openai.OpenAI(base_url=f"{stack.proxy}/v1", api_key=key, max_retries=0, timeout=30)
    _clients.append(made)
    return made


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close every client a test made: a socket left to the garbage collector is a ResourceWarning (an error)."""
    yield
    while _clients:
        _clients.pop().close()


def test_models_chat_completions_and_embeddings_through_the_openai_client(stack: Stack) -> None:
    api = client(stack, stack.key()["key"])
    assert {m.id for m in api.models.list()} == {"fake-chat", "fake-embed", "atlas"}
    assert api.models.retrieve("fake-chat").id == "fake-chat"

    chat = api.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content == "Hello, world!"
    assert chat.usage is not None and chat.usage.total_tokens == 11

    text = api.completions.create(model="fake-chat", prompt="def add(a, b):", max_tokens=8)
    assert text.choices[0].text == "Hello, world!"

    vectors = api.embeddings.create(model="fake-embed", input=["a", "b"])
    assert [len(d.embedding) for d in vectors.data] == [3, 3]


def test_streaming_with_usage(stack: Stack) -> None:
    api = client(stack, stack.key()["key"])
    stream = api.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "hi there"}],
                                         stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello, world!"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4  # one per streamed piece; the fake reports no usage itself
    plain = list(api.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "x"}],
                                             stream=True))
    assert all(c.usage is None for c in plain)


def test_done_inside_generated_text_does_not_end_the_accounting(stack: Stack) -> None:
    api = client(stack, stack.key()["key"])
    chunks = list(api.chat.completions.create(model="fake-chat", user="done-text", stream=True,
                                              stream_options={"include_usage": True},
                                              messages=[{"role": "user", "content": "x"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "say [DONE]!"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 3 and chunks[-1].usage is not None


def test_stream_passes_tool_calls_and_reasoning_untouched_and_strips_hop_by_hop(stack: Stack) -> None:
    key = stack.key()["key"]
    body = {"model": "fake-chat", "stream": True, "user": "tools", "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", f"{stack.proxy}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {key}", "X-Request-Id": "trace-42"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"] == "trace-42"
        assert response.headers["x-backend"] == "fake"
        assert float(response.headers["x-atlas-overhead-ms"]) >= 0
        raw = response.read()
    first = json.loads(raw.split(b"\r\n\r\n")[0].removeprefix(b"data: "))
    delta = first["choices"][0]["delta"]
    assert delta["reasoning_content"] == "thinking…"
    assert delta["tool_calls"][0]["function"] == {"name": "add", "arguments": "{\"a\": 1}"}
    seen = stack.llama.state.requests[-1]["headers"]
    assert seen["x-request-id"] == "trace-42"
    assert seen["authorization"] != f"Bearer {key}"  # the user's key never reaches the backend


def test_atlas_models_go_to_rag_api_with_the_callers_identity(stack: Stack) -> None:
    created = stack.key()
    api = client(stack, created["key"])
    api.chat.completions.create(model="atlas", messages=[{"role": "user", "content": "def f(): ..."}])
    seen = stack.rag.state.requests[-1]
    assert seen["headers"]["x-atlas-key-id"] == str(created["id"])
    assert seen["headers"]["x-atlas-user-id"] == str(created["user_id"])


def test_bad_and_missing_keys_are_401(stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(stack, "sk-llm-" + "x" * 43).models.list()
    response = httpx.post(f"{stack.proxy}/v1/chat/completions", json={"model": "fake-chat", "messages": []})
    assert response.status_code == 401
    assert "missing API key" in response.json()["error"]["message"]
    assert "x-atlas-overhead-ms" in response.headers
    assert httpx.get(f"{stack.proxy}/v1/models", headers={"x-api-key": stack.key()["key"]}).status_code == 200


def test_revoked_key_stops_working_within_a_second(stack: Stack) -> None:
    created = stack.key()
    api = client(stack, created["key"])
    api.models.list()  # cached in the proxy now
    revoked = httpx.patch(f"{stack.portal}/api/keys/{created['id']}/toggle", headers=stack.admin)
    assert revoked.json()["is_active"] is False
    start = time.monotonic()
    while True:
        try:
            api.models.list()
        except openai.AuthenticationError:
            break
        assert time.monotonic() - start < 1.0, "the revoked key still worked after 1 s"
        time.sleep(0.02)


def test_rate_limit_is_429_with_headers(stack: Stack) -> None:
    key = stack.key(rate_limit=3)["key"]
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
    statuses = [httpx.post(f"{stack.proxy}/v1/chat/completions", json=body, headers=headers) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert statuses[0].headers["x-ratelimit-limit-requests"] == "3"
    assert statuses[2].headers["x-ratelimit-remaining-requests"] == "0"
    refused = statuses[3]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["type"] == "rate_limit_error"
    with pytest.raises(openai.RateLimitError):
        client(stack, key).chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "x"}])


def test_fifty_parallel_requests_on_a_ten_per_minute_key_admit_exactly_ten(stack: Stack) -> None:
    key = stack.key(rate_limit=10)["key"]

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=50)) as http:
            calls = [http.post(f"{stack.proxy}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                               json={"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]})
                     for _ in range(50)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    statuses = asyncio.run(burst())
    assert statuses.count(200) == 10 and statuses.count(429) == 40


def test_tokens_per_minute_reserve_and_concurrency_limits(stack: Stack) -> None:
    key = stack.key(tokens_per_min=100)["key"]
    headers = {"Authorization": f"Bearer {key}"}
    too_big = httpx.post(f"{stack.proxy}/v1/chat/completions", headers=headers,
                         json={"model": "fake-chat", "max_tokens": 500, "messages": [{"role": "user", "content": "x"}]})
    assert too_big.status_code == 429 and "lower max_tokens" in too_big.json()["error"]["message"]
    ok = httpx.post(f"{stack.proxy}/v1/chat/completions", headers=headers,
                    json={"model": "fake-chat", "max_tokens": 60, "messages": [{"role": "user", "content": "x"}]})
    assert ok.status_code == 200
    # 60 reserved, 11 used: the reservation was reconciled, so 80 more fit in the minute.
    again = httpx.post(f"{stack.proxy}/v1/chat/completions", headers=headers,
                       json={"model": "fake-chat", "max_tokens": 80, "messages": [{"role": "user", "content": "x"}]})
    assert again.status_code == 200, again.text

    single = {"Authorization": f"Bearer {stack.key(max_concurrent=1)['key']}"}
    slow = {"model": "fake-chat", "user": "long", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", f"{stack.proxy}/v1/chat/completions", headers=single, json=slow) as running:
        assert running.status_code == 200
        second = httpx.post(f"{stack.proxy}/v1/chat/completions", headers=single,
                            json={"model": "fake-chat", "messages": [{"role": "user", "content": "x"}]})
        assert second.status_code == 429 and "concurrent" in second.json()["error"]["message"]
        running.read()
    after = httpx.post(f"{stack.proxy}/v1/chat/completions", headers=single,
                       json={"model": "fake-chat", "messages": [{"role": "user", "content": "x"}]})
    assert after.status_code == 200


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [(b"{not json", 400, "not valid JSON"),
     (b"[1, 2]", 400, "must be a JSON object"),
     (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), 400, "'model' is required"),
     (json.dumps({"model": "fake-chat", "messages": "hi"}).encode(), 400, "'messages' must be a non-empty list"),
     (json.dumps({"model": "fake-chat", "max_tokens": "lots", "messages": [{"role": "user"}]}).encode(), 400,
      "'max_tokens' must be an integer"),
     (json.dumps({"model": "fake-chat", "stream": "yes", "messages": [{"role": "user"}]}).encode(), 400,
      "'stream' must be true or false"),
     (json.dumps({"model": "nope", "messages": [{"role": "user"}]}).encode(), 404, "does not exist"),
     (json.dumps({"model": "fake-embed", "messages": [{"role": "user"}]}).encode(), 400, "served at /v1/embeddings"),
     (json.dumps({"model": "atlas\u0000", "messages": [{"role": "user"}]}).encode(), 400, "'model' is required"),
     (json.dumps({"model": "fake-chat", "max_tokens": 10**14, "messages": [{"role": "user"}]}).encode(), 400,
      "'max_tokens' must be an integer"),
     (b'{"model": "fake-chat", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested too deeply"),
     (b"{" + b" " * (11 * 1024 * 1024) + b"}", 413, "larger than")],
)
def test_bad_payloads_get_clear_openai_errors(stack: Stack, content: bytes, status: int, message: str) -> None:
    response = httpx.post(f"{stack.proxy}/v1/chat/completions", content=content, timeout=30,
                          headers={"Authorization": f"Bearer {stack.key()['key']}", "Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error["message"] and "Traceback" not in response.text
    if status == 404:
        assert error["code"] == "model_not_found"


def test_key_restricted_to_some_models(stack: Stack) -> None:
    api = client(stack, stack.key(allowed_models=["fake-chat"])["key"])
    assert [m.id for m in api.models.list()] == ["fake-chat"]
    with pytest.raises(openai.PermissionDeniedError):
        api.embeddings.create(model="fake-embed", input="x")


def test_backend_errors_are_relayed_without_internals(stack: Stack) -> None:
    api = client(stack, stack.key()["key"])
    with pytest.raises(openai.BadRequestError, match="context too long"):
        api.chat.completions.create(model="fake-chat", user="refuse", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.APIStatusError) as failed:
        api.chat.completions.create(model="fake-chat", user="fail", messages=[{"role": "user", "content": "x"}])
    assert failed.value.status_code == 502 and "traceback" not in str(failed.value.body)
    # A stream whose backend refuses: the status comes first, no event stream.
    auth = {"Authorization": f"Bearer {stack.key()['key']}"}
    response = httpx.post(f"{stack.proxy}/v1/chat/completions", headers=auth,
                          json={"model": "fake-chat", "stream": True, "user": "refuse", "messages": [{"role": "user"}]})
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/json")


def test_client_disconnect_cancels_the_backend_stream(stack: Stack) -> None:
    key = stack.key(max_concurrent=1)["key"]
    before = stack.llama.state.abandoned
    body = {"model": "fake-chat", "stream": True, "user": "long", "messages": [{"role": "user", "content": "x"}]}
    with ServerThread(stack.proxy_app()) as proxy:
        with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body,
                          headers={"Authorization": f"Bearer {key}"}) as response:
            next(response.iter_raw())
        deadline = time.monotonic() + 5
        while stack.llama.state.abandoned == before:
            assert time.monotonic() < deadline, "the backend stream was not cancelled"
            time.sleep(0.05)
        # The slot of the abandoned request is free again.
        ok = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                        json={"model": "fake-chat", "messages": [{"role": "user", "content": "x"}]})
        assert ok.status_code == 200


def test_backend_down_slow_and_redis_down(stack: Stack) -> None:
    key = {"Authorization": f"Bearer {stack.key()['key']}"}
    chat = {"model": "fake-chat", "messages": [{"role": "user", "content": "x"}]}
    dead = f"http://127.0.0.1:{free_port()}"
    with ServerThread(stack.proxy_app(ATLAS_LLAMA_URL=dead)) as proxy:
        response = httpx.post(f"{proxy.url}/v1/chat/completions", headers=key, json=chat)
        assert response.status_code == 503 and "llama-server is unavailable" in response.json()["error"]["message"]
        assert response.headers["retry-after"] == "2"
    with ServerThread(stack.proxy_app(ATLAS_PROXY_UPSTREAM_TIMEOUT_S="0.5")) as proxy:
        response = httpx.post(f"{proxy.url}/v1/chat/completions", headers=key, json=chat | {"user": "slow"})
        # a stalled backend is a dependency down: 503 with Retry-After, never a hang
        assert response.status_code == 503 and "0.5s" in response.json()["error"]["message"]
        assert "retry-after" in response.headers
    no_redis = f"redis://127.0.0.1:{free_port()}/0"
    with ServerThread(stack.proxy_app(ATLAS_REDIS_URL=no_redis)) as proxy:
        response = httpx.post(f"{proxy.url}/v1/chat/completions", headers=key, json=chat, timeout=30)
        assert response.status_code == 503 and "Redis is down" in response.json()["error"]["message"]
    with ServerThread(stack.proxy_app(ATLAS_REDIS_URL=no_redis, ATLAS_PROXY_FAIL_OPEN="true")) as proxy:
        assert httpx.post(f"{proxy.url}/v1/chat/completions", headers=key, json=chat, timeout=30).status_code == 200


def test_usage_reaches_the_portal(stack: Stack) -> None:
    created = stack.key()
    api = client(stack, created["key"])
    for _ in range(3):
        api.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "x"}])
    deadline = time.monotonic() + 10
    while True:
        usage: dict[str, Any] = httpx.get(f"{stack.portal}/api/usage", headers=stack.admin).json()
        rows = [r for r in usage["rows"] if r["key_id"] == created["id"]]
        if rows and rows[0]["requests"] == 3:
            break
        assert time.monotonic() < deadline, usage
        time.sleep(0.1)
    assert rows[0]["prompt_tokens"] == 21 and rows[0]["completion_tokens"] == 12 and rows[0]["model"] == "fake-chat"
