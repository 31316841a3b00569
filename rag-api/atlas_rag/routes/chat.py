"""``POST /v1/chat/completions`` for the ``atlas`` model, in OpenAI's shape: a coding problem gets the verified
answer (progress streamed as reasoning), anything else goes to the model alone."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from atlas_core.errors import ApiError
from atlas_engine import (
    CHARS_PER_TOKEN,
    FENCE_TAG,
    LLMUnavailable,
    SolveRequest,
    SolveResult,
    guess_language,
    is_coding_problem,
)
from atlas_rag.deps import CallerId, SettingsDep, SolverDep, TokenCap, require_proxy
from atlas_rag.routes.solve import admit
from atlas_rag.schemas import ChatExtension, ChatRequest
from atlas_rag.solver import Solver
from atlas_rag.streaming import respond, sse

router = APIRouter(dependencies=[Depends(require_proxy)])


@router.post("/v1/chat/completions", response_model=None)
async def chat(request: Request, validated: ChatRequest, settings: SettingsDep, solver: SolverDep, cap: TokenCap,
               user: CallerId) -> Response:
    body: dict[str, Any] = await request.json()  # as sent: what is not rag-api's passes through as it came
    ext = validated.atlas or ChatExtension()
    text = last_user_text(body["messages"])
    if text is None:
        raise ApiError(400, "the last message must be the user's, with text content", param="messages")
    model = str(body.get("model") or "atlas")
    stream = body.get("stream") is True
    options = body.get("stream_options")
    usage_wanted = isinstance(options, dict) and options.get("include_usage") is True
    if ext.verify is False or (ext.verify is None and not ext.tests and not is_coding_problem(text)):
        return await plain_chat(solver, body, model, stream, usage_wanted, cap, settings.rag_max_tokens)
    try:
        req = SolveRequest(problem=text, language=ext.language or guess_language(text), tests=ext.tests,
                           entry_point=ext.entry_point, budget=ext.budget, seed=ext.seed)
    except ValidationError as exc:
        raise ApiError(400, f"invalid request: {exc.errors()[0]['msg']}", param="messages") from None
    state = await admit(solver, req, "atlas.", cap)
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}

    def frame(item: dict[str, Any] | SolveResult) -> list[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return sse(base | {"object": "chat.completion.chunk",
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        if not isinstance(item, SolveResult):
            return [chunk({"role": "assistant", "reasoning_content": f"{item['message']}\n"})]
        out = [chunk({"content": answer_text(item)}), chunk({}, "stop")]
        if usage_wanted:
            out.append(sse(base | {"object": "chat.completion.chunk", "choices": [], "usage": item.usage}))
        return [*out, sse(b"[DONE]")]

    def completion(result: SolveResult) -> dict[str, Any]:
        message = {"role": "assistant", "content": answer_text(result)}
        return base | {"object": "chat.completion", "usage": result.usage, "atlas": result.model_dump(),
                       "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}

    return await respond(request, solver, state, stream=stream, user=user, frame=frame, body=completion)


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
            raise ApiError(400, "the messages alone take the whole token budget this request reserved; send a "
                           "shorter conversation", param="messages")
    forward["max_tokens"] = limit
    try:
        answer = await solver.engine.llm.forward_chat(forward)
    except LLMUnavailable as exc:
        raise ApiError(503, f"the model is unavailable: {exc}") from None
    answer["model"] = model
    if not stream:
        return JSONResponse(answer)
    choice = (answer.get("choices") or [{}])[0]
    content = (choice.get("message") or {}).get("content") or ""
    base = {"id": answer.get("id", f"chatcmpl-{uuid.uuid4().hex}"), "object": "chat.completion.chunk",
            "created": answer.get("created", int(time.time())), "model": model}
    events = [sse(base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                                       "finish_reason": None}]}),
              sse(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason",
                                                                                         "stop")}]})]
    if usage_wanted and answer.get("usage"):
        events.append(sse(base | {"choices": [], "usage": answer["usage"]}))
    events.append(sse(b"[DONE]"))
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
