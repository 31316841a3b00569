"""The proxy's metrics move by exactly what the test's own traffic did: requests, latencies (TTFT, inter-token,
end to end) by model and route, tokens by model, rejections by reason and backend errors by kind."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractContextManager

import httpx

from tests.conftest import ServerThread, free_port
from tests.metrics import samples, value
from tests.proxy.conftest import Stack
from tests.proxy.fake_upstream import PIECES


def chat(stack: Stack, key: str, **extra: object) -> httpx.Response:
    return httpx.post(f"{stack.proxy}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]} | extra)


def streamed_chat(stack: Stack, key: str, user: str = "") -> AbstractContextManager[httpx.Response]:
    """A streamed chat completion; ``user`` picks the fake backend's behaviour (long, tools, ...)."""
    return httpx.stream("POST", f"{stack.proxy}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                        json={"model": "fake-chat", "stream": True, "user": user,
                              "messages": [{"role": "user", "content": "hi"}]}, timeout=30)


def test_a_stream_and_a_plain_answer_move_latency_and_token_metrics(stack: Stack) -> None:
    key = stack.key()["key"]
    before = samples(stack.proxy)
    assert chat(stack, key).status_code == 200
    with streamed_chat(stack, key) as streamed:
        assert streamed.status_code == 200
        streamed.read()
    after = samples(stack.proxy)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"model": "fake-chat", "route": "raw"}
    assert moved("atlas_proxy_requests_total", **route, code="2xx") == 2
    assert moved("atlas_proxy_e2e_seconds_count", **route) == 2
    assert moved("atlas_proxy_ttft_seconds_count", **route) == 1  # streams only
    assert moved("atlas_proxy_itl_seconds_count", **route) == len(PIECES) - 1  # the gaps between pieces
    assert moved("atlas_proxy_ttft_seconds_sum", **route) > 0
    # the plain answer reports 7 + 4; the stream reports nothing, so it is estimated: one token a piece
    assert moved("atlas_proxy_tokens_total", model="fake-chat", kind="completion") == 4 + len(PIECES)
    assert moved("atlas_proxy_tokens_total", model="fake-chat", kind="prompt") >= 7


def test_rejections_by_reason_and_backend_errors_by_kind(stack: Stack) -> None:
    limited = stack.key(rate_limit=1)["key"]
    before = samples(stack.proxy)
    assert chat(stack, "sk-llm-not-a-key").status_code == 401
    assert chat(stack, limited).status_code == 200
    assert chat(stack, limited).status_code == 429
    assert chat(stack, stack.key()["key"], user="fail").status_code == 502
    after = samples(stack.proxy)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("atlas_proxy_rejections_total", reason="auth", scope="key") == 1
    assert moved("atlas_proxy_rejections_total", reason="rpm", scope="key") == 1
    assert moved("atlas_proxy_upstream_errors_total", backend="llama-server", kind="status_5xx") == 1
    assert moved("atlas_proxy_requests_total", model="fake-chat", route="raw", code="5xx") == 1
    assert moved("atlas_proxy_requests_total", model="fake-chat", route="raw", code="2xx") == 1


def test_model_atlas_and_the_task_api_count_under_their_routes(stack: Stack, rag_proxy: str) -> None:
    key = stack.key()["key"]
    before, tasks_before = samples(stack.proxy), samples(rag_proxy)
    assert chat(stack, key, model="atlas").status_code == 200
    submitted = httpx.post(f"{rag_proxy}/v1/tasks", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                           json={"prompt": "def f(): ...", "tests": [{"assert": "f() is None"}], "max_attempts": 1})
    assert submitted.status_code == 202, submitted.text
    after, tasks_after = samples(stack.proxy), samples(rag_proxy)
    assert value(after, "atlas_proxy_requests_total", model="atlas", route="atlas", code="2xx") - value(
        before, "atlas_proxy_requests_total", model="atlas", route="atlas", code="2xx") == 1
    assert value(tasks_after, "atlas_proxy_e2e_seconds_count", model="atlas", route="tasks") - value(
        tasks_before, "atlas_proxy_e2e_seconds_count", model="atlas", route="tasks") == 1


def test_a_backend_that_is_down_or_too_slow_counts_by_kind(stack: Stack) -> None:
    key = stack.key()["key"]
    down = stack.proxy_app(ATLAS_LLAMA_URL=f"http://127.0.0.1:{free_port()}")
    slow = stack.proxy_app(ATLAS_PROXY_UPSTREAM_TIMEOUT_S="0.5")
    with ServerThread(down) as down_proxy, ServerThread(slow) as slow_proxy:
        for proxy, extra, kind in ((down_proxy.url, {}, "unavailable"), (slow_proxy.url, {"user": "slow"}, "timeout")):
            answer = httpx.post(f"{proxy}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                json={"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]} | extra,
                                timeout=30)
            assert answer.status_code == 503, answer.text
            assert value(samples(proxy), "atlas_proxy_upstream_errors_total", backend="llama-server", kind=kind) == 1


def test_tokens_and_concurrency_rejections_count_by_reason(stack: Stack) -> None:
    tight = stack.key(tokens_per_min=100)["key"]
    single = stack.key(max_concurrent=1)["key"]
    before = samples(stack.proxy)
    assert chat(stack, tight, max_tokens=5000).status_code == 429  # more than the whole minute's tokens

    async def both() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            answers = await asyncio.gather(*(client.post(
                f"{stack.proxy}/v1/chat/completions", headers={"Authorization": f"Bearer {single}"},
                json={"model": "fake-chat", "user": "slow", "messages": [{"role": "user", "content": "hi"}]})
                for _ in range(2)))
        return sorted(a.status_code for a in answers)

    assert asyncio.run(both()) == [200, 429]
    after = samples(stack.proxy)
    for reason in ("over_limit", "concurrency"):
        moved = value(after, "atlas_proxy_rejections_total", reason=reason, scope="key") - value(
            before, "atlas_proxy_rejections_total", reason=reason, scope="key")
        assert moved == 1, reason


def test_a_client_that_leaves_mid_stream_is_counted_aborted_not_timed(stack: Stack) -> None:
    key = stack.key()["key"]
    labels = {"model": "fake-chat", "route": "raw"}
    before = samples(stack.proxy)
    with streamed_chat(stack, key, "long") as streamed:
        next(streamed.iter_raw())  # the first piece, then the client hangs up
    deadline = time.monotonic() + 10
    while value(after := samples(stack.proxy), "atlas_proxy_requests_total", **labels, code="aborted") == value(
            before, "atlas_proxy_requests_total", **labels, code="aborted"):
        assert time.monotonic() < deadline, "the abandoned stream was never settled"
        time.sleep(0.05)
    assert value(after, "atlas_proxy_e2e_seconds_count", **labels) == value(before, "atlas_proxy_e2e_seconds_count",
                                                                          **labels)


def test_a_reasoning_models_thinking_is_its_first_token(stack: Stack) -> None:
    key = stack.key()["key"]
    labels = {"model": "fake-chat", "route": "raw"}
    before = samples(stack.proxy)
    with streamed_chat(stack, key, "tools") as streamed:
        streamed.read()
    after = samples(stack.proxy)
    assert value(after, "atlas_proxy_itl_seconds_count", **labels) - value(
        before, "atlas_proxy_itl_seconds_count", **labels) == len(PIECES)  # the thinking, then every piece


def test_a_backend_that_breaks_off_mid_stream_counts_as_broke_off(stack: Stack) -> None:
    key = stack.key()["key"]
    before = samples(stack.proxy)
    with streamed_chat(stack, key, "break") as streamed:
        assert streamed.status_code == 200  # the status went out before the backend broke off
        received = b"".join(streamed.iter_raw())
    assert received.count(b"data:") == 2  # the two pieces it sent, then the end of the stream
    deadline = time.monotonic() + 10
    labels = {"backend": "llama-server", "kind": "broke_off"}
    while value(after := samples(stack.proxy), "atlas_proxy_upstream_errors_total", **labels) == value(
            before, "atlas_proxy_upstream_errors_total", **labels):
        assert time.monotonic() < deadline, "the broken stream was never counted"
        time.sleep(0.05)
    assert value(after, "atlas_proxy_upstream_errors_total", **labels) - value(
        before, "atlas_proxy_upstream_errors_total", **labels) == 1
    assert value(after, "atlas_proxy_requests_total", model="fake-chat", route="raw", code="5xx") - value(
        before, "atlas_proxy_requests_total", model="fake-chat", route="raw", code="5xx") == 1
