"""A scripted stand-in for llama-server A, for the engine's and rag-api's tests.

``script(body)`` returns the text of the answer, or ``(text, seconds)`` to answer after a delay. Every request
body is recorded; ``finished`` counts the answers delivered in full, ``abandoned`` the requests whose client
hung up first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

Script = Callable[[dict[str, Any]], "str | tuple[str, float]"]


def fake_llm(api_key: str) -> FastAPI:
    app = FastAPI()
    app.state.requests = []
    app.state.finished = 0
    app.state.abandoned = 0
    app.state.script = lambda body: "no script"
    app.state.down = False

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    async def answer(request: Request, kind: str) -> Any:
        if request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": {"message": "bad key"}}, 401)
        if app.state.down:
            return JSONResponse({"error": {"message": "loading"}}, 503)
        body = await request.json()
        app.state.requests.append(body)
        try:
            out = app.state.script(body)
        except RuntimeError:
            return JSONResponse({"error": {"message": "failed"}}, 500)
        text, delay = out if isinstance(out, tuple) else (out, 0.0)
        until = time.monotonic() + delay
        while time.monotonic() < until:  # a client that hangs up abandons the generation, as llama.cpp's does
            if await request.is_disconnected():
                app.state.abandoned += 1
                return JSONResponse({}, 499)
            await asyncio.sleep(0.05)
        app.state.finished += 1
        tokens = max(1, len(text) // 4)
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                  if kind == "chat" else {"index": 0, "text": text, "finish_reason": "stop"})
        return {"id": "cmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": "fake",
                "choices": [choice], "usage": {"prompt_tokens": 10, "completion_tokens": tokens,
                                               "total_tokens": 10 + tokens}}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await answer(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await answer(request, "completion")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "fake", "object": "model"}]}

    return app


def user_text(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"]) if "messages" in body else str(body.get("prompt", ""))


def fenced(code: str, language: str = "python") -> str:
    return f"Here is the solution:\n```{language}\n{code}\n```\nIt works."


def fake(server: Any) -> Any:
    """The fake's state (script, requests, counters) behind a ServerThread."""
    return server.server.config.app.state
