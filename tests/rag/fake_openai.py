"""A stand-in for an OpenAI-compatible model server that speaks tools, for model ``atlas``'s conversation tests
(tests/rag/test_chat_conversation.py, tests/e2e/test_atlas_tools.py): tool calls in a message and in stream
deltas (index, id, function name, then the arguments in fragments), usage when asked for, and switches for
the ways real servers misbehave (down, broken off, holding a stream, no usage, llama-cpp-python's repeats)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.conftest import ServerThread

README = "ATLAS answers with verified code."
READ_FILE = {"type": "function", "function": {
    "name": "read_file", "description": "Read a file of the project.",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}

Reply = dict[str, Any]  # an assistant message: {"content": str | None, "tool_calls": [...]}


def agent_reply(body: dict[str, Any]) -> Reply:
    """What the fake model says: a tool result last is read back ("The file says: ..."); a user turn with tools on
    offer asks to read README.md; anything else is a right ``add`` in a fence (what a solve's candidates need)."""
    last = body["messages"][-1] if "messages" in body else {"role": "user", "content": body.get("prompt", "")}
    if last["role"] == "tool":
        return {"content": f"The file says: {last['content']}", "tool_calls": None}
    if body.get("tools") and body.get("tool_choice") != "none":
        call = {"id": "call_1", "type": "function",
                "function": {"name": "read_file", "arguments": json.dumps({"path": "README.md"})}}
        return {"content": None, "tool_calls": [call]}
    return {"content": "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\n", "tool_calls": None}


def stream_chunks(reply: Reply, base: dict[str, Any], usage: dict[str, int] | None,
                  repeat: bool = False) -> list[dict[str, Any]]:
    """``reply`` as OpenAI streams it: the role, the content in pieces, each tool call opened (index, id, name,
    empty arguments) then its arguments in fragments, the finish reason, then usage when asked for. ``repeat``:
    as llama-cpp-python streams it, every delta of a tool call repeating its id, type and name."""
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return base | {"object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    out = [chunk({"role": "assistant", "content": ""})]
    content = reply.get("content") or ""
    out += [chunk({"content": content[i:i + 5]}) for i in range(0, len(content), 5)]
    for n, call in enumerate(reply.get("tool_calls") or []):
        name = call["function"]["name"]
        out.append(chunk({"tool_calls": [{"index": n, "id": call["id"], "type": "function",
                                          "function": {"name": name, "arguments": ""}}]}))
        arguments = call["function"]["arguments"]
        # llama-cpp-python repeats the id, type and name in every delta; OpenAI sends them once
        said: dict[str, Any] = {"id": call["id"], "type": "function"} if repeat else {}
        out += [chunk({"tool_calls": [{"index": n, **said, "function": {
            **({"name": name} if repeat else {}), "arguments": arguments[i:i + 4]}}]})
            for i in range(0, len(arguments), 4)]
    out.append(chunk({}, "tool_calls" if reply.get("tool_calls") else "stop"))
    if usage is not None:
        out.append(base | {"object": "chat.completion.chunk", "choices": [], "usage": usage})
    return out


def openai_fake(api_key: str, reply: Callable[[dict[str, Any]], Reply] = agent_reply) -> FastAPI:
    """A model server that behaves like OpenAI's for chat completions, tools included (llama-cpp-python's server
    speaks the same). ``state.requests`` records every body; ``state.down`` answers 503; ``state.break_after``
    n breaks a stream off after n chunks; ``state.gate`` (a threading.Event) holds a stream after its first
    chunk until it is set; ``state.usage`` false leaves usage out of streams, and ``state.repeat`` true repeats a
    tool call's id and name in each of its deltas, as llama-cpp-python does."""
    app = FastAPI()
    app.state.requests = []
    app.state.down = False
    app.state.break_after = None
    app.state.gate = None
    app.state.usage = True
    app.state.repeat = False

    async def chunks(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
        for n, event in enumerate(events):
            if n == app.state.break_after:
                raise ConnectionAbortedError("the fake model server broke off")
            yield f"data: {json.dumps(event)}\r\n\r\n".encode()
            if n == 0 and app.state.gate is not None:
                await asyncio.to_thread(app.state.gate.wait, 30)
        yield b"data: [DONE]\r\n\r\n"

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": {"message": "bad key"}}, 401)
        if app.state.down:
            return JSONResponse({"error": {"message": "loading model"}}, 503)
        body = await request.json()
        app.state.requests.append(body)
        answer = reply(body)
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": "fake-model"}
        if body.get("stream"):
            wanted = (body.get("stream_options") or {}).get("include_usage") and app.state.usage
            events = stream_chunks(answer, base, usage if wanted else None, app.state.repeat)
            return StreamingResponse(chunks(events), media_type="text/event-stream")
        message = {"role": "assistant", "content": answer.get("content")}
        if answer.get("tool_calls"):
            message["tool_calls"] = answer["tool_calls"]
        finish = "tool_calls" if answer.get("tool_calls") else "stop"
        return JSONResponse(base | {"object": "chat.completion", "usage": usage,
                                    "choices": [{"index": 0, "message": message, "finish_reason": finish}]})

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        app.state.requests.append(body)
        return JSONResponse({"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
                             "model": "fake-model", "usage": {"prompt_tokens": 5, "completion_tokens": 5,
                                                              "total_tokens": 10},
                             "choices": [{"index": 0, "text": reply(body)["content"], "finish_reason": "stop"}]})

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def events(text: str) -> list[Any]:
    """The data of each SSE event: JSON, or "[DONE]"."""
    out: list[Any] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def tool_calls_of(chunks: list[Any]) -> list[dict[str, Any]]:
    """The tool calls a stream's deltas add up to, as a client assembles them (by index)."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"] if isinstance(chunk, dict) else []:
            for delta in choice["delta"].get("tool_calls") or []:
                call = calls.setdefault(delta["index"], {"id": None, "name": "", "arguments": ""})
                call["id"] = delta.get("id") or call["id"]
                call["name"] += (delta.get("function") or {}).get("name") or ""
                call["arguments"] += (delta.get("function") or {}).get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def state(server: ServerThread) -> Any:
    """The fake's state (requests, switches) behind a ServerThread."""
    app: Any = server.server.config.app
    return app.state
