"""How a solve's answer reaches the client: an SSE stream of progress then the answer (with keep-alives while
nothing happens), or one JSON body. Either way a client that leaves cancels the solve, so no more tokens or
sandbox time are spent on an answer nobody reads."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from atlas_core.errors import ApiError
from atlas_engine import LLMUnavailable, SandboxUnavailable, Solve, SolveResult
from atlas_rag.solver import Emit, Solver

log = logging.getLogger("atlas.rag")
KEEPALIVE_S = 10.0
Frame = Callable[[dict[str, Any] | SolveResult], list[bytes]]


def sse(data: Any) -> bytes:
    """One SSE event: JSON, or ``bytes`` as they are (``[DONE]``)."""
    return b"data: " + (data if isinstance(data, bytes) else json.dumps(data).encode()) + b"\n\n"


def unavailable(exc: LLMUnavailable | SandboxUnavailable) -> str:
    return f"the {'model' if isinstance(exc, LLMUnavailable) else 'sandbox'} is unavailable: {exc}"


async def _until_disconnected(request: Request) -> None:
    """Returns when the client closes its connection (the body has been read: the next ASGI message is the
    disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def run_or_cancel(request: Request, work: Awaitable[SolveResult]) -> SolveResult | None:
    """The solve, or None when the client went away first (the solve is then cancelled)."""
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


async def stream_events(work: Callable[[Emit], Awaitable[SolveResult]], frame: Frame) -> AsyncIterator[bytes]:
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
                    error = {"message": unavailable(item), "type": "service_unavailable"}
                else:
                    log.error("solve failed", exc_info=item)
                    error = {"message": "internal error; the service log has details", "type": "server_error"}
                yield sse({"type": "error", "error": error})
                yield sse(b"[DONE]")
                return
            for chunk in frame(item):
                yield chunk
            if isinstance(item, SolveResult):
                return
    finally:
        task.cancel()


async def respond(request: Request, solver: Solver, solve: Solve, *, stream: bool, user: str | None, frame: Frame,
                  body: Callable[[SolveResult], dict[str, Any]]) -> Response:
    """Runs the solve as an SSE stream of ``frame``s, or to one JSON ``body`` (503 when the model or the sandbox
    is down; 499, for the access log, when the client left)."""
    if stream:
        return StreamingResponse(stream_events(lambda emit: solver.run(solve, emit, user), frame),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    try:
        result = await run_or_cancel(request, solver.run(solve, None, user))
    except (LLMUnavailable, SandboxUnavailable) as exc:
        raise ApiError(503, unavailable(exc)) from None
    if result is None:  # nobody is listening; the status is for the access log
        return Response(status_code=499)
    return JSONResponse(body(result))
