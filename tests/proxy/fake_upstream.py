"""A fake OpenAI-compatible backend that streams at a set rate, for the proxy's tests and benchmark.

What it does depends on the request's ``user`` field: ``slow`` waits 2 s before answering, ``long`` streams
200 pieces over 2 s, ``tools`` streams a tool call and ``reasoning_content``, ``fail`` answers 500, ``refuse`` answers
400 in OpenAI's shape. It records every request it receives and how many streams the client abandoned.

``POST /v1/solve`` stands in for rag-api's verified solve: a fixed ``SOLVE_RESULT`` as JSON, or with ``stream``
as progress events, a keep-alive comment, a result event and ``[DONE]``; a ``problem`` of ``refuse`` answers 400
in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

PIECES = ["Hello", ",", " world", "!"]
SOLVE_USAGE = {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}
SOLVE_RESULT = {"id": "solve-fake", "code": "def add(a, b):\n    return a + b\n", "language": "python",
                "entry_point": "add", "verified": True, "status": "passed", "stopped": "done",
                "summary": "verified: 1/1 tests pass", "usage": SOLVE_USAGE}


def fake_upstream(models: list[str], api_key: str, piece_delay_s: float = 0.0,
                  stream_usage: dict[str, int] | None = None) -> FastAPI:
    """``stream_usage``: what a stream reports in its final usage chunk when the request asks for one with
    ``stream_options.include_usage`` (as rag-api does); None: the backend never reports usage in streams."""
    app = FastAPI()
    app.state.requests = []
    app.state.abandoned = 0
    app.state.piece_delay = piece_delay_s

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {api_key}"

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models", response_model=None)
    async def list_models(request: Request) -> Any:
        if not authorized(request):
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in models]}

    async def chunks(body: dict[str, Any], kind: str) -> AsyncIterator[bytes]:
        base = {"id": "cmpl-fake", "created": int(time.time()), "model": body.get("model", "fake")}
        long = body.get("user") == "long"
        pieces = PIECES * 50 if long else (["say ", "[DONE]", "!"] if body.get("user") == "done-text" else PIECES)
        delay = max(app.state.piece_delay, 0.01) if long else app.state.piece_delay  # "long" takes 2 s or more
        try:
            if body.get("user") == "tools" and kind == "chat":
                special = {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {
                    "reasoning_content": "thinking…", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": "add", "arguments": "{\"a\": 1}"}}]}, "finish_reason": None}]}
                yield f"data: {json.dumps(special)}\r\n\r\n".encode()
            for n, piece in enumerate(pieces):
                await asyncio.sleep(delay)
                if n == 2 and body.get("user") == "break":  # the backend dies mid-answer
                    raise ConnectionAbortedError("the fake backend broke off")
                if kind == "chat":
                    choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                    chunk = {**base, "object": "chat.completion.chunk", "choices": [choice]}
                else:
                    chunk = {**base, "object": "text_completion", "choices": [{"index": 0, "text": piece}]}
                yield f"data: {json.dumps(chunk)}\r\n\r\n".encode()
            if stream_usage is not None and (body.get("stream_options") or {}).get("include_usage"):
                usage = {**base, "object": "chat.completion.chunk", "choices": [], "usage": stream_usage}
                yield f"data: {json.dumps(usage)}\r\n\r\n".encode()
            yield b"data: [DONE]\r\n\r\n"
        except asyncio.CancelledError:
            app.state.abandoned += 1
            raise

    async def complete(request: Request, kind: str) -> Response:
        body = await request.json()
        app.state.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        if not authorized(request):
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)
        user = body.get("user")
        if user == "slow":
            await asyncio.sleep(2.0)
        if user == "fail":
            return Response("Internal Server Error: traceback at /srv/fake.py line 1", 500)
        if user == "refuse":
            return JSONResponse({"error": {"message": "context too long", "type": "invalid_request_error"}}, 400)
        if body.get("stream"):
            return StreamingResponse(chunks(body, kind), media_type="text/event-stream",
                                     headers={"x-backend": "fake", "connection": "keep-alive"})
        text = "".join(PIECES)
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                  if kind == "chat" else {"index": 0, "text": text, "finish_reason": "stop"})
        return JSONResponse({"id": "cmpl-fake", "object": "chat.completion" if kind == "chat" else "text_completion",
                             "created": int(time.time()), "model": body.get("model", "fake"), "choices": [choice],
                             "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await complete(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await complete(request, "completions")

    @app.post("/v1/solve")
    async def solve(request: Request) -> Response:
        body = await request.json()
        app.state.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body,
                                   "raw": await request.body()})
        if not authorized(request):
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)
        if body["problem"] == "refuse":
            return JSONResponse({"error": {"message": "'language' must be one of python, ...",
                                           "type": "invalid_request_error", "param": "language", "code": None}}, 400)
        if not body.get("stream"):
            return JSONResponse(SOLVE_RESULT)

        async def events() -> AsyncIterator[bytes]:
            for stage in ("generate", "verify"):
                yield f"data: {json.dumps({'type': 'progress', 'stage': stage, 'message': stage + '…'})}\n\n".encode()
            yield b": keep-alive\n\n"
            yield f"data: {json.dumps({'type': 'result', 'result': SOLVE_RESULT, 'usage': SOLVE_USAGE})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/embeddings", response_model=None)
    async def embeddings(request: Request) -> Any:
        body = await request.json()
        app.state.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        if not authorized(request):
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return {"object": "list", "model": body.get("model", "fake"), "usage": {"prompt_tokens": 3, "total_tokens": 3},
                "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(texts))]}

    return app


def from_env() -> FastAPI:
    """``uvicorn --factory tests.proxy.fake_upstream:from_env``: the benchmark's backend in its own process."""
    import os

    return fake_upstream(os.environ["FAKE_MODELS"].split(","), os.environ["FAKE_API_KEY"],
                         float(os.environ.get("FAKE_PIECE_DELAY_S", "0")))
