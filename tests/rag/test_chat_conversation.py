"""Model ``atlas`` over a whole conversation (rag-api's chat route against an OpenAI-shaped model server): a tool
result last goes to the model, tools and tool_choice reach it unchanged, its tool calls come back in OpenAI's
shape (streamed as they are written), earlier turns become a verified solve's context, bad turns are 400s
naming the field, and a model that is down is a 503 before any byte."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from atlas_core.settings import load_settings
from atlas_engine import SolveRequest
from atlas_rag.app import create_app
from atlas_rag.routes.chat import conversation_context
from atlas_rag.schemas import ChatMessage
from atlas_rag.settings import Settings
from tests.conftest import LLAMA_KEY, PROXY_TOKEN, ServerThread, free_port
from tests.rag.fake_openai import READ_FILE, README, events, openai_fake, state, tool_calls_of

AUTH = {"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": "7"}
ADD = "Write a Python function add(a, b) that returns the sum.\n>>> add(2, 3)\n5\n"


@pytest.fixture
def model() -> Iterator[ServerThread]:
    with ServerThread(openai_fake(LLAMA_KEY)) as server:
        yield server
        if state(server).gate is not None:
            state(server).gate.set()  # no stream left waiting: the server can stop


@pytest.fixture
def rag_app(service_env: dict[str, str], model: ServerThread, sandbox_url: str) -> Iterator[tuple[FastAPI, str]]:
    env = service_env | {"ATLAS_LLAMA_URL": model.url, "ATLAS_SANDBOX_URL": sandbox_url}
    app = create_app(load_settings(Settings, environ=env))
    with ServerThread(app) as server:
        yield app, server.url


@pytest.fixture
def rag(rag_app: tuple[FastAPI, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rag_app[1], timeout=60, headers=AUTH) as client:
        yield client


def tool_conversation() -> list[dict[str, Any]]:
    """An agent's second turn: it offered read_file, the model called it, here is the result."""
    call = {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "README.md"}'}}
    return [{"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": "What does README.md say?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": README}]


def test_a_tool_result_last_is_answered_by_the_model_with_the_whole_conversation(
        rag: httpx.Client, model: ServerThread) -> None:
    sent = tool_conversation()
    response = rag.post("/v1/chat/completions", json={"model": "atlas", "messages": sent, "tools": [READ_FILE]})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["message"]["content"] == f"The file says: {README}" and answer["model"] == "atlas"
    [upstream] = state(model).requests
    assert upstream["tools"] == [READ_FILE] and upstream["stream"] is False
    # as sent, but the null content llama-cpp-python refuses, which means the same
    assert upstream["messages"] == [*sent[:2], sent[2] | {"content": ""}, *sent[3:]]


def test_turns_reach_the_model_in_the_shape_every_server_takes(rag: httpx.Client, model: ServerThread) -> None:
    sent: list[dict[str, Any]] = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Read it."}], "name": "ann"},
        {"role": "assistant", "tool_calls": [tool_conversation()[2]["tool_calls"][0]]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": README}]}]
    assert rag.post("/v1/chat/completions", json={"model": "atlas", "messages": sent}).status_code == 200
    assert state(model).requests[-1]["messages"] == [
        {"role": "system", "content": "Be brief."}, sent[1], sent[2] | {"content": ""},
        {"role": "tool", "tool_call_id": "call_1", "content": README}]


def test_tools_and_tool_choice_reach_the_model_unchanged_and_its_tool_calls_come_back(
        rag: httpx.Client, model: ServerThread) -> None:
    choice = {"type": "function", "function": {"name": "read_file"}}
    body = {"model": "atlas", "messages": [{"role": "user", "content": ADD}], "tools": [READ_FILE],
            "tool_choice": choice, "temperature": 0.2, "parallel_tool_calls": False, "max_tokens": 300,
            "atlas": {"budget": {"k": 2}}}
    response = rag.post("/v1/chat/completions", json=body, headers={"X-Atlas-Token-Cap": "1000"})
    assert response.status_code == 200, response.text
    [upstream] = state(model).requests  # a coding request, but tools are on offer: the agent path, k = 1
    assert upstream["tools"] == [READ_FILE] and upstream["tool_choice"] == choice
    assert (upstream["temperature"], upstream["parallel_tool_calls"], upstream["max_tokens"]) == (0.2, False, 300)
    assert "atlas" not in upstream and "max_completion_tokens" not in upstream
    message = response.json()["choices"][0]
    assert message["finish_reason"] == "tool_calls" and message["message"]["content"] is None
    [call] = message["message"]["tool_calls"]
    assert call["function"] == {"name": "read_file", "arguments": '{"path": "README.md"}'} and call["id"] == "call_1"


def test_the_token_cap_bounds_what_the_model_may_write(rag: httpx.Client, model: ServerThread) -> None:
    body = {"model": "atlas", "messages": tool_conversation(), "max_tokens": 5000}
    assert rag.post("/v1/chat/completions", json=body, headers={"X-Atlas-Token-Cap": "400"}).status_code == 200
    assert 200 < state(model).requests[-1]["max_tokens"] < 400  # 400 less the prompt's estimate
    refused = rag.post("/v1/chat/completions", json=body, headers={"X-Atlas-Token-Cap": "10"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "messages"


def test_a_stream_relays_tool_call_deltas_in_openais_shape_as_they_are_written(
        rag: httpx.Client, model: ServerThread) -> None:
    state(model).gate = gate = threading.Event()
    body = {"model": "atlas", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Summarise README.md"}], "tools": [READ_FILE]}
    with rag.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        # the model holds the rest until the gate opens: this chunk was relayed as it was written
        assert json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
        gate.set()
        got = events("\n\n".join([first, *lines]) + "\n\n")
    assert got[-1] == "[DONE]" and all(chunk["model"] == "atlas" for chunk in [json.loads(first[6:]), *got[:-1]])
    assert tool_calls_of(got) == [{"id": "call_1", "name": "read_file", "arguments": '{"path": "README.md"}'}]
    assert got[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert got[-2]["choices"] == [] and got[-2]["usage"]["completion_tokens"] == 7
    assert state(model).requests[-1]["stream"] is True


def test_a_tool_calls_id_and_name_go_out_once_as_openai_sends_them(rag: httpx.Client, model: ServerThread) -> None:
    state(model).repeat = True
    body = {"model": "atlas", "stream": True, "messages": [{"role": "user", "content": "Read it"}],
            "tools": [READ_FILE]}
    got = events(rag.post("/v1/chat/completions", json=body).text)
    deltas = [d for c in got[:-1] for d in c["choices"][0]["delta"].get("tool_calls") or []]
    assert len(deltas) > 2 and [("id" in d, "name" in d["function"]) for d in deltas] == [
        (True, True)] + [(False, False)] * (len(deltas) - 1)
    assert tool_calls_of(got) == [{"id": "call_1", "name": "read_file", "arguments": '{"path": "README.md"}'}]


def test_a_stream_without_usage_from_the_model_gets_an_estimate(rag: httpx.Client, model: ServerThread) -> None:
    state(model).usage = False
    body = {"model": "atlas", "stream": True, "stream_options": {"include_usage": True},
            "messages": tool_conversation()}
    got = events(rag.post("/v1/chat/completions", json=body).text)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in got[:-2]) == f"The file says: {README}"
    assert got[-2]["usage"]["completion_tokens"] > 0 and got[-2]["model"] == "atlas" and got[-1] == "[DONE]"
    plain = events(rag.post("/v1/chat/completions", json=body | {"stream_options": None}).text)
    assert not any(isinstance(c, dict) and "usage" in c for c in plain)


def test_a_stream_that_breaks_off_ends_with_an_error_then_done(rag: httpx.Client, model: ServerThread) -> None:
    state(model).break_after = 3
    body = {"model": "atlas", "stream": True, "messages": tool_conversation()}
    got = events(rag.post("/v1/chat/completions", json=body).text)
    assert got[0]["choices"][0]["delta"]["role"] == "assistant"
    assert got[-2]["type"] == "error" and "model is unavailable" in got[-2]["error"]["message"]
    assert got[-1] == "[DONE]"
    state(model).break_after = None  # and the model's slot came back
    assert rag.post("/v1/chat/completions", json=body | {"stream": False}).status_code == 200


def test_a_client_that_leaves_a_stream_gives_the_model_slot_back(rag: httpx.Client, model: ServerThread) -> None:
    state(model).gate = gate = threading.Event()
    body = {"model": "atlas", "stream": True, "messages": tool_conversation()}
    with rag.stream("POST", "/v1/chat/completions", json=body) as response:
        assert next(line for line in response.iter_lines() if line.startswith("data: "))
    gate.set()
    state(model).gate = None
    # ATLAS_RAG_LLM_PARALLEL is 1: this waits for the slot the abandoned stream held
    answer = rag.post("/v1/chat/completions", json=body | {"stream": False}, timeout=10)
    assert answer.status_code == 200, answer.text


def test_a_model_that_is_down_is_a_503_before_any_byte(rag: httpx.Client, model: ServerThread) -> None:
    state(model).down = True
    for stream in (False, True):
        response = rag.post("/v1/chat/completions", json={"model": "atlas", "stream": stream,
                                                          "messages": tool_conversation()})
        assert response.status_code == 503, response.text
        assert "model is unavailable" in response.json()["error"]["message"] and "Retry-After" in response.headers


def test_a_model_nobody_listens_on_is_a_503(service_env: dict[str, str]) -> None:
    env = service_env | {"ATLAS_LLAMA_URL": f"http://127.0.0.1:{free_port()}"}
    with ServerThread(create_app(load_settings(Settings, environ=env))) as server:
        for stream in (False, True):
            response = httpx.post(f"{server.url}/v1/chat/completions", headers=AUTH, timeout=30, json={
                "model": "atlas", "stream": stream, "messages": tool_conversation()})
            reason = response.json()["error"]["message"]  # unreachable first, then skipped for a while as down
            assert response.status_code == 503 and "ConnectError" in reason, reason


def spy_on_solves(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> list[SolveRequest]:
    """The SolveRequests the chat route starts (the solves still run)."""
    seen: list[SolveRequest] = []
    solver = app.state.solver
    start = solver.start

    async def spy(request: SolveRequest, *args: Any) -> Any:
        seen.append(request)
        return await start(request, *args)

    monkeypatch.setattr(solver, "start", spy)
    return seen


def new_project(rag: httpx.Client, owner: str = "7") -> str:
    response = rag.post("/v1/projects", json={"name": "calc"}, headers={"X-Atlas-User-Id": owner})
    assert response.status_code == 201, response.text
    project_id: str = response.json()["id"]
    return project_id


def test_earlier_turns_become_the_verified_solves_context(rag_app: tuple[FastAPI, str], rag: httpx.Client,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen = spy_on_solves(rag_app[0], monkeypatch)
    project = new_project(rag)
    messages = [{"role": "system", "content": "Use type hints everywhere."},
                {"role": "user", "content": "I am writing a calculator."},
                {"role": "assistant", "content": "Happy to help with the calculator."},
                {"role": "user", "content": [{"type": "text", "text": ADD}]}]
    response = rag.post("/v1/chat/completions", headers={"X-Atlas-Project": project}, json={
        "model": "atlas", "messages": messages, "atlas": {"budget": {"k": 1, "self_tests": False}}})
    assert response.status_code == 200, response.text
    assert "return a + b" in response.json()["choices"][0]["message"]["content"]
    [solve] = seen
    assert solve.problem == ADD and solve.context is not None
    assert solve.context.index("Use type hints") < solve.context.index("a calculator") < solve.context.index(
        "Happy to help")
    assert ADD not in solve.context and solve.project is not None and solve.project.id == project


def test_the_body_names_the_project_before_the_header_and_it_must_be_the_callers(
        rag_app: tuple[FastAPI, str], rag: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = spy_on_solves(rag_app[0], monkeypatch)
    mine, theirs = new_project(rag), new_project(rag, owner="8")
    body = {"model": "atlas", "messages": [{"role": "user", "content": ADD}],
            "atlas": {"project": {"id": mine}, "budget": {"k": 1, "self_tests": False}}}
    response = rag.post("/v1/chat/completions", headers={"X-Atlas-Project": theirs}, json=body)
    assert response.status_code == 200, response.text
    assert seen[0].project is not None and seen[0].project.id == mine and seen[0].context is None
    # another user's project is refused before any work, named by the header or by the body
    verify = {"verify": True}
    by_header = rag.post("/v1/chat/completions", headers={"X-Atlas-Project": theirs}, json=body | {"atlas": verify})
    by_body = rag.post("/v1/chat/completions", json=body | {"atlas": verify | {"project": {"id": theirs}}})
    assert (by_header.status_code, by_body.status_code) == (404, 404) and len(seen) == 1


@pytest.mark.parametrize(("extra", "verified"), [
    ({}, True),  # a code request, no tools
    ({"tools": [READ_FILE], "tool_choice": "none"}, True),  # tools offered but not to be used
    ({"tools": [READ_FILE]}, False),  # an agent's turn: the model decides
    ({"tools": [READ_FILE], "atlas": {"verify": True}}, True),  # the client asks
    ({"atlas": {"verify": False}}, False),
])
def test_the_rule_decides_the_path(rag_app: tuple[FastAPI, str], rag: httpx.Client, model: ServerThread,
                                   monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], verified: bool) -> None:
    seen = spy_on_solves(rag_app[0], monkeypatch)
    budget = {"budget": {"k": 1, "self_tests": False}}
    body = {"model": "atlas", "messages": [{"role": "user", "content": ADD}]} | extra
    body["atlas"] = budget | body.get("atlas", {})
    response = rag.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert bool(seen) is verified and ("atlas" in response.json()) is verified


@pytest.mark.parametrize(("messages", "field"), [
    ([{"role": "user", "content": "hi"}, {"role": "function", "content": "x"}], "messages.1.role"),
    ([{"role": "robot", "content": "hi"}], "messages.0.role"),
    ([{"content": "hi"}], "messages.0.role"),
    ([{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}], "messages.1.tool_call_id"),
    ([{"role": "assistant", "content": None, "tool_calls": "read_file"}], "messages.0.tool_calls"),
    ([], "messages"),
])
def test_a_bad_turn_is_a_400_naming_it(rag: httpx.Client, model: ServerThread, messages: list[Any],
                                       field: str) -> None:
    response = rag.post("/v1/chat/completions", json={"model": "atlas", "messages": messages})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field
    assert state(model).requests == []


def test_a_verified_answer_needs_a_user_turn_last_and_a_project_id(rag: httpx.Client, model: ServerThread) -> None:
    body = {"model": "atlas", "messages": tool_conversation(), "atlas": {"verify": True}}
    refused = rag.post("/v1/chat/completions", json=body)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "messages"
    bad = rag.post("/v1/chat/completions", headers={"X-Atlas-Project": "p_../etc"}, json={
        "model": "atlas", "messages": [{"role": "user", "content": ADD}]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "X-Atlas-Project"
    assert state(model).requests == []


def test_the_context_keeps_the_newest_turns_within_its_bound() -> None:
    turns = [ChatMessage(role="system", content="S" * 500)]
    turns += [ChatMessage(role="user" if n % 2 else "assistant", content=f"turn {n} " + "x" * 990)
              for n in range(40)]
    turns.append(ChatMessage(role="assistant", content=None, tool_calls=[
        {"id": "c", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}]))
    turns.append(ChatMessage(role="tool", tool_call_id="c", name="read_file", content="print(1)"))
    context = conversation_context(turns, limit=6000)
    assert context is not None and len(context) <= 6000
    assert context.startswith("[") and "earlier message(s) omitted]" in context and "S" * 100 not in context
    assert context.endswith('(called read_file with {"path": "a.py"})\n\n[tool result (read_file, c)]\nprint(1)')
    assert "turn 39 " in context and "turn 30 " not in context
    assert conversation_context([]) is None
    short = conversation_context([ChatMessage(role="developer", content="Be brief.")])
    assert short == "[developer]\nBe brief."
