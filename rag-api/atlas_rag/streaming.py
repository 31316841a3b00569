"""How an answer reaches the client: a solve's as an SSE stream of progress then the answer (with keep-alives
while nothing happens), or as one JSON body; the model's own chat stream (model ``atlas`` on its agent path)
relayed event by event. Either way a client that leaves cancels the work, so no more tokens or sandbox time are
spent on an answer nobody reads."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from atlas_core.errors import ApiError
from atlas_core.responses import EVENT_END
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


async def relay_chat(first: bytes, chunks: AsyncGenerator[bytes, None], *, model: str, usage_wanted: bool,
                     prompt_tokens: int) -> AsyncIterator[bytes]:
    """The model server's chat stream (``first``, then ``chunks``) event by event, each chunk's ``model`` renamed
    to the one the client asked for; everything else (``tool_calls`` deltas, ``reasoning_content``, comments)
    as it came, except that a tool call's ``id``, ``type`` and name go out in its first delta only, as OpenAI
    sends them (llama-cpp-python repeats them in every delta, which clients that add deltas up would
    concatenate). When ``usage_wanted`` and the server sent no usage, a usage chunk is estimated before
    ``[DONE]`` (prompt: as estimated; completion: one token per streamed piece). A stream that breaks off ends
    with an error event and ``[DONE]``; one that ends without ``[DONE]`` gets it."""
    buffer, usage_seen, pieces, done = first, False, 0, False
    last: dict[str, Any] = {}
    opened: set[tuple[Any, Any]] = set()  # (choice, tool call) indexes whose first delta has gone

    def finish() -> list[bytes]:
        out = []
        if usage_wanted and not usage_seen:
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": pieces,
                     "total_tokens": prompt_tokens + pieces}
            out.append(sse({"id": last.get("id", "chatcmpl-atlas"), "object": "chat.completion.chunk",
                            "created": last.get("created", int(time.time())), "model": model, "choices": [],
                            "usage": usage}))
        return [*out, sse(b"[DONE]")]

    try:
        while True:
            while not done and (end := EVENT_END.search(buffer)) is not None:
                event, buffer = buffer[: end.start()], buffer[end.end():]
                lines = event.splitlines()
                data = b"\n".join(line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:"))
                if not any(line.startswith(b"data:") for line in lines):
                    yield event + b"\n\n"  # a comment (keep-alive) or an event without data
                    continue
                if data.strip() == b"[DONE]":
                    done = True
                    for out in finish():
                        yield out
                    continue
                try:
                    chunk = json.loads(data)
                except ValueError:
                    chunk = None
                if not isinstance(chunk, dict):
                    yield event + b"\n\n"
                    continue
                if "model" in chunk:
                    chunk["model"] = model
                _once(chunk, opened)
                if chunk.get("usage"):
                    usage_seen = True
                if any(isinstance(c, dict) and any((c.get("delta") or {}).get(k) for k in
                                                   ("content", "tool_calls", "reasoning_content"))
                       for c in chunk.get("choices") or []):
                    pieces += 1
                last = chunk
                others = [line for line in lines if not line.startswith(b"data:")]
                yield b"\n".join([*others, b"data: " + json.dumps(chunk).encode()]) + b"\n\n"
            try:
                buffer += await anext(chunks)
            except StopAsyncIteration:
                break
        if not done:  # the server ended without [DONE]: the client still gets a complete stream
            for out in finish():
                yield out
    except LLMUnavailable as exc:  # the status line has gone: the client learns it in the stream
        log.warning("model stream broke off: %s", exc)
        yield sse({"type": "error", "error": {"message": unavailable(exc), "type": "service_unavailable"}})
        yield sse(b"[DONE]")
    finally:
        await chunks.aclose()


def _once(chunk: dict[str, Any], opened: set[tuple[Any, Any]]) -> None:
    """Drops what a tool call's first delta already said (its id, type and function name) from its later ones."""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
        for call in calls if isinstance(calls, list) else []:
            if not isinstance(call, dict):
                continue
            key = (choice.get("index"), call.get("index"))
            if key not in opened:
                opened.add(key)
                continue
            call.pop("id", None)
            call.pop("type", None)
            if isinstance(call.get("function"), dict):
                call["function"].pop("name", None)
