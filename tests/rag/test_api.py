"""rag-api's routes over HTTP: /v1/solve (JSON and SSE), chat completions for ``atlas`` (verified, streamed,
plain conversation), the service credential, bad input, a model that is down, a client that leaves, telemetry."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from atlas_core.settings import load_settings
from atlas_engine import SOLVES_STREAM
from atlas_rag.app import create_app
from atlas_rag.settings import Settings
from tests.conftest import METRICS_TOKEN, PROXY_TOKEN, RedisServer, ServerThread
from tests.rag.fake_llm import fake, fenced, user_text
from tests.rag.scrape import scrape

ADD = "Write a Python function add(a, b) that returns the sum.\n>>> add(2, 3)\n5\n"
AUTH = {"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": "7"}


@pytest.fixture
def rag(service_env: dict[str, str], llm: ServerThread, sandbox_url: str) -> Iterator[httpx.Client]:
    env = service_env | {"ATLAS_LLAMA_URL": llm.url, "ATLAS_SANDBOX_URL": sandbox_url}
    with ServerThread(create_app(load_settings(Settings, environ=env))) as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def script(body: dict[str, Any]) -> str:
    text = user_text(body)
    if "capital" in text:
        return "Paris."
    return fenced("def add(a, b):\n    return a + b")


def events(response: httpx.Response) -> list[Any]:
    out = []
    for block in response.text.split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_solve_answers_with_verified_code(rag: httpx.Client, llm: ServerThread, redis_server: RedisServer) -> None:
    fake(llm).script = script
    response = rag.post("/v1/solve", json={"problem": ADD, "budget": {"k": 2}}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verified"] and "return a + b" in body["code"] and body["usage"]["completion_tokens"] > 0
    with redis_server.client() as r:
        [(_, record)] = r.xrange(SOLVES_STREAM)
    assert record[b"status"] == b"passed" and record[b"user_id"] == b"7" and record[b"k"] == b"2"
    assert (record[b"source"], record[b"task_id"]) == (b"solve", b"")
    assert record[b"sandbox_calls"] == str(body["timings"]["sandbox_calls"]).encode()
    assert ADD.encode() not in b"".join(record.values())  # a hash of the problem, never the problem
    metrics = rag.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert 'atlas_solves_total{status="passed",stopped="done",verified="true"} 1.0' in metrics


RIGHT = fenced("def add(a, b):\n    return a + b")
WRONG = fenced("def add(a, b):\n    return a - b")


def test_solve_metrics_move_by_what_the_solve_did(rag: httpx.Client, llm: ServerThread,
                                                  redis_server: RedisServer) -> None:
    fake(llm).script = script
    before = scrape(rag)
    response = rag.post("/v1/solve", json={"problem": ADD, "budget": {"k": 2, "self_tests": False}}, headers=AUTH)
    body = response.json()
    after = scrape(rag)
    calls = body["timings"]["sandbox_calls"]
    assert body["verified"] and body["repair_rounds"] == 0 and calls >= 1
    assert after.delta(before, "atlas_solves_total", status="passed", stopped="done", verified="true") == 1
    assert after.delta(before, "atlas_solve_k_count") == 1 and after.delta(before, "atlas_solve_k_sum") == 2
    assert after.delta(before, "atlas_solve_k_bucket", le="1.0") == 0
    assert after.delta(before, "atlas_solve_k_bucket", le="2.0") == 1
    assert after.delta(before, "atlas_solve_tokens_per_solve_count") == 1
    assert after.delta(before, "atlas_solve_tokens_per_solve_sum") == body["usage"]["total_tokens"]
    assert after.delta(before, "atlas_solve_sandbox_calls_total") == calls
    assert after.delta(before, "atlas_solve_repair_rounds_total") == 0
    assert after.delta(before, "atlas_solve_sandbox_runs_total") == body["timings"]["sandbox_runs"] >= 1
    for kind in ("assert", "input"):  # no checks without self_tests: the series exist and did not move
        assert after.has("atlas_solve_checks_total", kind=kind)
        assert after.delta(before, "atlas_solve_checks_total", kind=kind) == 0
    for result in ("fixed", "failed"):  # the series exist before any repair, and did not move
        assert after.has("atlas_solve_repairs_total", result=result)
        assert after.delta(before, "atlas_solve_repairs_total", result=result) == 0
    with redis_server.client() as r:
        [(_, record)] = r.xrange(SOLVES_STREAM)
    assert record[b"sandbox_calls"] == str(calls).encode() and record[b"source"] == b"solve"


def test_checks_and_plans_are_counted(rag: httpx.Client, llm: ServerThread, redis_server: RedisServer) -> None:
    """A program with no tests: the model writes two inputs and one plan; the counters move by exactly that."""
    programs = ["print(sum(map(int, input().split())))", "print(max(map(int, input().split())))"]

    def checks_script(body: dict[str, Any]) -> str:
        text = user_text(body)
        if "different approaches" in text:
            return "1. Add the numbers up."
        if "test inputs" in text:
            return "```input\n1 2\n```\n```input\n5 5\n```"
        return fenced(programs[int(body.get("seed", 0)) % 2])

    fake(llm).script = checks_script
    before = scrape(rag)
    request = {"problem": "Read two integers from standard input and print their sum.", "seed": 10,
               "budget": {"k": 2, "plans": 1, "repair_rounds": 0}}
    body = rag.post("/v1/solve", json=request, headers=AUTH).json()
    after = scrape(rag)
    assert body["tests"]["generated_inputs"] == 2 and body["plans"] == ["Add the numbers up."]
    assert after.delta(before, "atlas_solve_checks_total", kind="input") == 2
    assert after.delta(before, "atlas_solve_checks_total", kind="assert") == 0
    assert after.delta(before, "atlas_solve_plans_total") == 1
    assert after.delta(before, "atlas_solve_sandbox_runs_total") == body["timings"]["sandbox_runs"] == 4
    with redis_server.client() as r:
        record = r.xrange(SOLVES_STREAM)[-1][1]
    assert (record[b"generated_inputs"], record[b"plans"], record[b"sandbox_runs"]) == (b"2", b"1", b"4")


def test_repairs_are_counted_as_fixed_or_failed(rag: httpx.Client, llm: ServerThread) -> None:
    # the first candidate is wrong; a repair (its prompt carries the wrong code) is right, or wrong again
    fake(llm).script = lambda body: RIGHT if "return a - b" in user_text(body) else WRONG
    request = {"problem": ADD, "budget": {"k": 1, "self_tests": False, "repair_rounds": 2}}
    before = scrape(rag)
    fixed = rag.post("/v1/solve", json=request, headers=AUTH).json()
    middle = scrape(rag)
    assert fixed["verified"] and fixed["repair_rounds"] == 1
    assert middle.delta(before, "atlas_solve_repairs_total", result="fixed") == 1
    assert middle.delta(before, "atlas_solve_repairs_total", result="failed") == 0
    assert middle.delta(before, "atlas_solve_repair_rounds_total") == 1
    assert middle.delta(before, "atlas_solves_total", status="passed", stopped="done", verified="true") == 1

    fake(llm).script = lambda body: WRONG
    failed = rag.post("/v1/solve", json=request, headers=AUTH).json()
    after = scrape(rag)
    assert not failed["verified"] and failed["repair_rounds"] >= 1
    assert after.delta(middle, "atlas_solve_repairs_total", result="failed") == 1
    assert after.delta(middle, "atlas_solve_repairs_total", result="fixed") == 0
    assert after.delta(middle, "atlas_solve_repair_rounds_total") == failed["repair_rounds"]
    assert after.delta(middle, "atlas_solves_total", status="failed", stopped=failed["stopped"],
                       verified="false") == 1
    assert after.delta(middle, "atlas_solve_sandbox_calls_total") == failed["timings"]["sandbox_calls"]


def test_solve_streams_progress_then_the_result(rag: httpx.Client, llm: ServerThread) -> None:
    fake(llm).script = script
    response = rag.post("/v1/solve", json={"problem": ADD, "budget": {"k": 2}, "stream": True}, headers=AUTH)
    assert response.headers["content-type"].startswith("text/event-stream")
    got = events(response)
    stages = [e["stage"] for e in got[:-2]]
    assert stages[:2] == ["route", "generate"] and "verify" in stages  # the router's decision first
    assert got[-2]["type"] == "result" and got[-2]["result"]["verified"] and got[-2]["usage"]["total_tokens"] > 0
    assert got[-1] == "[DONE]"


def test_every_route_needs_the_service_credential(rag: httpx.Client) -> None:
    for path in ("/v1/solve", "/v1/chat/completions"):
        response = rag.post(path, json={"problem": ADD})
        assert response.status_code == 401 and "service credential" in response.json()["error"]["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "problem"),
    ({"problem": "  \n "}, "problem"),
    ({"problem": ADD, "budget": {"k": 99}}, "budget.k"),
    ({"problem": ADD, "tests": [{"assert": "assert f()", "input": "x", "output": "y"}]}, "tests.0"),
    ({"problem": "Multiply.", "tests": [{"args": [1], "expected": 1}]}, "tests.0"),
    ({"problem": "Print 1.", "language": "c", "tests": [{"assert": "assert 1"}]}, "tests.0"),
    ({"problem": ADD, "language": "cobol"}, "language"),
])
def test_bad_requests_name_the_field(rag: httpx.Client, body: dict[str, Any], field: str) -> None:
    response = rag.post("/v1/solve", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field


def test_a_model_that_is_down_is_a_503_with_the_reason(rag: httpx.Client, llm: ServerThread) -> None:
    fake(llm).down = True
    response = rag.post("/v1/solve", json={"problem": ADD}, headers=AUTH)
    assert response.status_code == 503 and "model is unavailable" in response.json()["error"]["message"]
    streamed = events(rag.post("/v1/solve", json={"problem": ADD, "stream": True}, headers=AUTH))
    assert streamed[-2]["type"] == "error" and streamed[-1] == "[DONE]"


def test_chat_completion_for_atlas_is_the_verified_answer(rag: httpx.Client, llm: ServerThread) -> None:
    fake(llm).script = script
    response = rag.post("/v1/chat/completions", headers=AUTH, json={
        "model": "atlas", "messages": [{"role": "user", "content": ADD}], "atlas": {"budget": {"k": 2}}})
    body = response.json()
    content = body["choices"][0]["message"]["content"]
    assert content.startswith("```python\n") and "return a + b" in content and "Verification: passed" in content
    assert body["atlas"]["verified"] and body["usage"]["total_tokens"] > 0 and body["model"] == "atlas"


def test_chat_streams_progress_as_reasoning_then_the_answer(rag: httpx.Client, llm: ServerThread) -> None:
    fake(llm).script = script
    response = rag.post("/v1/chat/completions", headers=AUTH, json={
        "model": "atlas", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": ADD}]})
    got = events(response)
    reasoning = [e["choices"][0]["delta"].get("reasoning_content") for e in got[:-4]]
    assert reasoning and all(reasoning)
    assert "return a + b" in got[-4]["choices"][0]["delta"]["content"]
    assert got[-3]["choices"][0]["finish_reason"] == "stop"
    assert got[-2]["usage"]["completion_tokens"] > 0 and got[-1] == "[DONE]"


def test_conversation_goes_straight_to_the_model(rag: httpx.Client, llm: ServerThread) -> None:
    fake(llm).script = script
    response = rag.post("/v1/chat/completions", headers=AUTH, json={
        "model": "atlas", "messages": [{"role": "user", "content": "What is the capital of France?"}]})
    assert response.json()["choices"][0]["message"]["content"] == "Paris."
    assert len(fake(llm).requests) == 1  # k = 1, no sandbox, no self-tests


def test_a_client_that_leaves_cancels_the_solve(rag: httpx.Client, llm: ServerThread) -> None:
    fake(llm).script = lambda body: (fenced("def add(a, b):\n    return a + b"), 10.0)
    with pytest.raises(httpx.ReadTimeout):
        rag.post("/v1/solve", json={"problem": ADD, "budget": {"k": 2}}, headers=AUTH, timeout=1.0)
    app = fake(llm)
    deadline = time.monotonic() + 5
    while app.abandoned < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # ATLAS_RAG_LLM_PARALLEL=1: the second generation was waiting and must never start
    assert len(app.requests) == 1 and app.abandoned == 1 and app.finished == 0
