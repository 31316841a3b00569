"""End to end, as an agent client (OpenCode) uses model ``atlas``: the official ``openai`` client, a real llm-proxy,
portal and rag-api, and an OpenAI-shaped model server at the edge. Turn 1 offers a ``read_file`` tool and the
model calls it; the client runs it and sends the assistant turn and the tool's result back; turn 2's model sees
that result and the client gets the answer built on it. Streamed and not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import LLAMA_KEY, ServerThread
from tests.e2e.agents import rag_proxy
from tests.proxy import conftest as proxy_conftest
from tests.proxy.conftest import Stack
from tests.rag.fake_openai import READ_FILE, README, openai_fake, state

stack = proxy_conftest.stack  # the proxy tests' portal, proxy and Redis (module-scoped)
FILES = {"README.md": README}
TOOLS: list[Any] = [READ_FILE]  # as an agent sends them: plain JSON, not the client's TypedDicts


@pytest.fixture(scope="module")
def model() -> Iterator[ServerThread]:
    """The model server rag-api talks to: OpenAI's behaviour, tool calls included (tests/rag's fake)."""
    with ServerThread(openai_fake(LLAMA_KEY)) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(stack: Stack, model: ServerThread) -> Iterator[str]:
    """A proxy whose rag-api is a real one on that model server."""
    with rag_proxy(stack, model.url) as url:
        yield url


@pytest.fixture
def api(stack: Stack, proxy: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{proxy}/v1", api_key=stack.key()["key"], max_retries=0, timeout=60) as client:
        yield client


def run_tool(call: Any) -> dict[str, Any]:
    """What the agent does with a tool call: runs read_file, and answers with a ``tool`` message."""
    assert call.function.name == "read_file"
    path = json.loads(call.function.arguments)["path"]
    return {"role": "tool", "tool_call_id": call.id, "content": FILES[path]}


def conversation() -> list[Any]:
    return [{"role": "system", "content": "You are a coding agent. Use the tools."},
            {"role": "user", "content": "What does README.md say?"}]


def test_a_tool_call_conversation_without_streaming(api: openai.OpenAI, model: ServerThread) -> None:
    messages = conversation()
    first = api.chat.completions.create(model="atlas", messages=messages, tools=TOOLS)
    choice = first.choices[0]
    assert first.model == "atlas" and choice.finish_reason == "tool_calls" and choice.message.tool_calls
    [call] = choice.message.tool_calls
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append(run_tool(call))

    second = api.chat.completions.create(model="atlas", messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == f"The file says: {README}"
    seen = state(model).requests[-1]  # the model got the whole conversation, the tool's result last
    assert [m["role"] for m in seen["messages"]] == ["system", "user", "assistant", "tool"]
    assert seen["messages"][-1] == {"role": "tool", "tool_call_id": call.id, "content": README}
    assert seen["messages"][2]["tool_calls"][0]["function"]["name"] == "read_file"


def test_a_tool_call_conversation_streamed(api: openai.OpenAI, model: ServerThread) -> None:
    messages = conversation()
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in api.chat.completions.create(model="atlas", messages=messages, stream=True, tools=TOOLS):
        assert chunk.model == "atlas"
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += (delta.function and delta.function.name) or ""
            call["arguments"] += (delta.function and delta.function.arguments) or ""
        finish = (chunk.choices[0].finish_reason if chunk.choices else None) or finish
    assert finish == "tool_calls" and list(calls) == [0]
    assert calls[0]["name"] == "read_file" and json.loads(calls[0]["arguments"]) == {"path": "README.md"}
    messages.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": calls[0]["id"], "type": "function",
         "function": {"name": calls[0]["name"], "arguments": calls[0]["arguments"]}}]})
    messages.append({"role": "tool", "tool_call_id": calls[0]["id"], "content": FILES["README.md"]})

    stream = api.chat.completions.create(model="atlas", messages=messages, stream=True, tools=TOOLS,
                                         stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"The file says: {README}"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert state(model).requests[-1]["stream"] is True


def test_the_project_header_reaches_rag_api(stack: Stack) -> None:
    """llm-proxy passes X-Atlas-Project on to rag-api (here the proxy tests' stand-in, which records headers)."""
    project = "p_" + "a" * 24
    with openai.OpenAI(base_url=f"{stack.proxy}/v1", api_key=stack.key()["key"], max_retries=0) as api:
        api.chat.completions.create(model="atlas", messages=[{"role": "user", "content": "def f(): ..."}],
                                    extra_headers={"X-Atlas-Project": project})
    assert stack.rag.state.requests[-1]["headers"]["x-atlas-project"] == project
