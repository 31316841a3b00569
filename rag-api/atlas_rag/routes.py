"""rag-api's public routes (reached through the proxy, which authenticates users and sends the service
credential): ``POST /v1/solve`` and ``POST /v1/chat/completions`` for the ``atlas`` model."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from atlas_core.auth import require_token
from atlas_core.errors import error_response
from atlas_rag.engine import CHARS_PER_TOKEN, Engine, Solve
from atlas_rag.llm import LLMUnavailable
from atlas_rag.problem import ProblemError, guess_language, is_coding_problem
from atlas_rag.prompts import FENCE_TAG
from atlas_rag.sandbox import SandboxUnavailable
from atlas_rag.schemas import ChatExtension, ChatRequest, SolveRequest, SolveResult
from atlas_rag.settings import Settings
from atlas_rag.telemetry import Telemetry

log = logging.getLogger("atlas.rag")
KEEPALIVE_S = 10.0
SLOT_GRACE_S = 30.0  # past a solve's deadline, its admission slot is free whatever happened to its task
Emit = Callable[[dict[str, Any]], Awaitable[None]]


class Busy(Exception):
    pass


class Solver:
    """Runs solves for the routes: admission, the solve as its own task (cancelled when the client goes), and
    one telemetry record per finished solve."""

    def __init__(self, engine: Engine, telemetry: Telemetry, limit: int) -> None:
        self.engine = engine
        self.telemetry = telemetry
        self.limit = limit
        # Admitted solves and when their slot expires at the latest: a solve whose task never got to run
        # (its client left at once) cannot hold a slot past its own deadline.
        self._slots: dict[str, float] = {}

    @property
    def running(self) -> int:
        now = time.monotonic()
        self._slots = {k: until for k, until in self._slots.items() if until > now}
        return len(self._slots)

    def start(self, request: SolveRequest, token_cap: int | None = None) -> Solve:
        """Admit and parse a solve (Busy, or ProblemError for bad input, before any work). The slot is taken
        here, so a burst of requests cannot all pass before any of them runs; ``run`` gives it back."""
        if self.running >= self.limit:
            raise Busy()
        solve = self.engine.start(request)
        solve.token_cap = token_cap
        self._slots[solve.id] = time.monotonic() + solve.budget.deadline_s + SLOT_GRACE_S
        return solve

    async def run(self, solve: Solve, emit: Emit | None, user_id: str | None) -> SolveResult:
        try:
            result = await self.engine.run(solve, emit)
        finally:
            self._slots.pop(solve.id, None)
        await self.telemetry.record(result, solve.problem.text, user_id)
        return result


def _sse(data: Any) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else json.dumps(data).encode()) + b"\n\n"


def _unavailable(exc: LLMUnavailable | SandboxUnavailable) -> str:
    return f"the {'model' if isinstance(exc, LLMUnavailable) else 'sandbox'} is unavailable: {exc}"


async def _until_disconnected(request: Request) -> None:
    """Returns when the client closes its connection (the body has been read: the next ASGI message is the
    disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def run_or_cancel(request: Request, work: Awaitable[SolveResult]) -> SolveResult | None:
    """The solve, or None when the client went away first (the solve is then cancelled: no more tokens or
    sandbox time are spent on an answer nobody reads)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return None if task.cancelled() else task.result()


async def stream_events(work: Callable[[Emit], Awaitable[SolveResult]],
                        frame: Callable[[dict[str, Any] | SolveResult], list[bytes]]) -> AsyncIterator[bytes]:
    """Progress as it happens, a keep-alive comment when nothing happens for a while, then the answer. Closing
    the iterator (the client left) cancels the solve."""
    queue: asyncio.Queue[dict[str, Any] | SolveResult | BaseException] = asyncio.Queue()

    async def emit(event: dict[str, Any]) -> None:
        await queue.put(event)

    async def runner() -> None:
        try:
            await queue.put(await work(emit))
        except Exception as exc:  # reported in the stream: the status line has gone already
            await queue.put(exc)

    task = asyncio.ensure_future(runner())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if isinstance(item, BaseException):
                if isinstance(item, LLMUnavailable | SandboxUnavailable):
                    error = {"message": _unavailable(item), "type": "service_unavailable"}
                else:
                    log.error("solve failed", exc_info=item)
                    error = {"message": "internal error; the service log has details", "type": "server_error"}
                yield _sse({"type": "error", "error": error})
                yield _sse(b"[DONE]")
                return
            for chunk in frame(item):
                yield chunk
            if isinstance(item, SolveResult):
                return
    finally:
        task.cancel()


Frame = Callable[[dict[str, Any] | SolveResult], list[bytes]]


def token_cap(request: Request) -> int | None:
    """What the proxy reserved for this request (``X-Atlas-Token-Cap``): the solve never spends more."""
    value = request.headers.get("x-atlas-token-cap", "")
    return int(value) if value.isdigit() and 0 < len(value) <= 12 else None


def begin(solver: Solver, request: SolveRequest, prefix: str = "", cap: int | None = None) -> Solve | Response:
    """The solve, or the 400/503 that refuses it before any work."""
    try:
        return solver.start(request, cap)
    except ProblemError as exc:
        return error_response(400, str(exc), param=prefix + exc.field)
    except Busy:
        return error_response(503, "too many solves are running; retry shortly", headers={"Retry-After": "5"})


async def respond(request: Request, solver: Solver, solve: Solve, stream: bool, frame: Frame,
                  body: Callable[[SolveResult], dict[str, Any]]) -> Response:
    """Runs the solve as an SSE stream of ``frame``s, or to one JSON ``body``; either way a client that leaves
    cancels it."""
    user = request.headers.get("x-atlas-user-id")
    if stream:
        return StreamingResponse(stream_events(lambda emit: solver.run(solve, emit, user), frame),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    try:
        result = await run_or_cancel(request, solver.run(solve, None, user))
    except (LLMUnavailable, SandboxUnavailable) as exc:
        return error_response(503, _unavailable(exc))
    if result is None:  # nobody is listening; the status is for the access log
        return Response(status_code=499)
    return JSONResponse(body(result))


def router(settings: Settings) -> APIRouter:
    # Only llm-proxy may act for a user (it authenticated the key and names its owner in X-Atlas-User-Id).
    api = APIRouter(dependencies=[Depends(require_token(settings.proxy_token, "ATLAS_PROXY_TOKEN"))])

    @api.post("/v1/solve", response_model=None)
    async def solve(body: SolveRequest, request: Request) -> Response:
        solver: Solver = request.app.state.solver
        state = begin(solver, body, cap=token_cap(request))
        if isinstance(state, Response):
            return state

        def frame(item: dict[str, Any] | SolveResult) -> list[bytes]:
            if isinstance(item, SolveResult):
                return [_sse({"type": "result", "result": item.model_dump(), "usage": item.usage}), _sse(b"[DONE]")]
            return [_sse({"type": "progress", **item})]

        return await respond(request, solver, state, body.stream, frame, lambda result: result.model_dump())

    @api.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request, validated: ChatRequest) -> Response:
        body: dict[str, Any] = await request.json()  # as sent: what is not rag-api's passes through as it came
        ext = validated.atlas or ChatExtension()
        text = last_user_text(body["messages"])
        if text is None:
            return error_response(400, "the last message must be the user's, with text content", param="messages")
        model = str(body.get("model") or "atlas")
        stream = body.get("stream") is True
        options = body.get("stream_options")
        usage_wanted = isinstance(options, dict) and options.get("include_usage") is True
        solver: Solver = request.app.state.solver
        if ext.verify is False or (ext.verify is None and not ext.tests and not is_coding_problem(text)):
            return await plain_chat(solver, body, model, stream, usage_wanted, token_cap(request),
                                    settings.rag_max_tokens)
        try:
            req = SolveRequest(problem=text, language=ext.language or guess_language(text), tests=ext.tests,
                               entry_point=ext.entry_point, budget=ext.budget, seed=ext.seed)
        except ValidationError as exc:
            return error_response(400, f"invalid request: {exc.errors()[0]['msg']}", param="messages")
        state = begin(solver, req, "atlas.", token_cap(request))
        if isinstance(state, Response):
            return state
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}

        def frame(item: dict[str, Any] | SolveResult) -> list[bytes]:
            def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                return _sse(base | {"object": "chat.completion.chunk",
                                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            if not isinstance(item, SolveResult):
                return [chunk({"role": "assistant", "reasoning_content": f"{item['message']}\n"})]
            out = [chunk({"content": answer_text(item)}), chunk({}, "stop")]
            if usage_wanted:
                out.append(_sse(base | {"object": "chat.completion.chunk", "choices": [], "usage": item.usage}))
            return [*out, _sse(b"[DONE]")]

        def completion(result: SolveResult) -> dict[str, Any]:
            message = {"role": "assistant", "content": answer_text(result)}
            return base | {"object": "chat.completion", "usage": result.usage, "atlas": result.model_dump(),
                           "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}

        return await respond(request, solver, state, stream, frame, completion)

    return api


async def plain_chat(solver: Solver, body: dict[str, Any], model: str, stream: bool, usage_wanted: bool,
                     cap: int | None, default_max_tokens: int) -> Response:
    """Not a coding problem: the model answers alone (k = 1), in OpenAI's shape, streamed as one piece, within
    the request's token cap (llama.cpp is told ``max_tokens``)."""
    forward = {k: v for k, v in body.items()
               if k not in ("atlas", "model", "stream", "stream_options", "max_completion_tokens")}
    asked = body.get("max_completion_tokens", body.get("max_tokens"))
    limit = asked if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0 else default_max_tokens
    if cap is not None:
        prompt = len(json.dumps(body.get("messages"))) // CHARS_PER_TOKEN + 1
        limit = min(limit, cap - prompt)
        if limit < 1:
            return error_response(400, "the messages alone take the whole token budget this request reserved; "
                                  "send a shorter conversation", param="messages")
    forward["max_tokens"] = limit
    try:
        answer = await solver.engine.llm.forward_chat(forward)
    except LLMUnavailable as exc:
        return error_response(503, f"the model is unavailable: {exc}")
    answer["model"] = model
    if not stream:
        return JSONResponse(answer)
    choice = (answer.get("choices") or [{}])[0]
    content = (choice.get("message") or {}).get("content") or ""
    base = {"id": answer.get("id", f"chatcmpl-{uuid.uuid4().hex}"), "object": "chat.completion.chunk",
            "created": answer.get("created", int(time.time())), "model": model}
    events = [_sse(base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                                        "finish_reason": None}]}),
              _sse(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason",
                                                                                          "stop")}]})]
    if usage_wanted and answer.get("usage"):
        events.append(_sse(base | {"choices": [], "usage": answer["usage"]}))
    events.append(_sse(b"[DONE]"))
    return Response(b"".join(events), media_type="text/event-stream")


def last_user_text(messages: list[Any]) -> str | None:
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, list):  # content parts: the text ones, in order
        content = "\n".join(p["text"] for p in content
                            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return content if isinstance(content, str) and content.strip() else None


def answer_text(result: SolveResult) -> str:
    """The chat answer: the selected program, then one line saying what was verified."""
    if result.code is None:
        return f"I could not produce code for this problem. ({result.summary})"
    return f"```{FENCE_TAG.get(result.language, '')}\n{result.code.rstrip()}\n```\n\nVerification: {result.summary}"
