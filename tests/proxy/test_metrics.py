"""The proxy's metrics move by exactly what the test's own traffic did: requests, latencies (TTFT, inter-token,
end to end) by model and route, tokens by model, rejections by reason and backend errors by kind."""

from __future__ import annotations

import httpx

from tests.metrics import samples, value
from tests.proxy.conftest import Stack
from tests.proxy.fake_upstream import PIECES


def chat(stack: Stack, key: str, **extra: object) -> httpx.Response:
    return httpx.post(f"{stack.proxy}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]} | extra)


def test_a_stream_and_a_plain_answer_move_latency_and_token_metrics(stack: Stack) -> None:
    key = stack.key()["key"]
    before = samples(stack.proxy)
    assert chat(stack, key).status_code == 200
    with httpx.stream("POST", f"{stack.proxy}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "fake-chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
                      timeout=30) as streamed:
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
