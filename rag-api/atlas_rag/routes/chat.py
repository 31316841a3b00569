"""``POST /v1/chat/completions`` for the ``atlas`` model, in OpenAI's shape, over a whole conversation: system
and developer prompts, user turns, assistant turns (with ``tool_calls`` and null content) and ``tool`` results.

Each request takes one of two paths:

- **verified** (the pipeline: k candidates judged in the sandbox, progress streamed as ``reasoning_content``):
  when the last message is a user turn with text, ``atlas.verify`` is not false, and either the client asks for
  verification (``atlas.verify`` true, or ``atlas.tests`` given) or the text is a coding request
  (``is_coding_problem``) and no tool is on offer (no ``tools``, or ``tool_choice`` ``"none"``). The last user
  turn is the problem; the turns before it (system prompt, earlier turns, tool calls and results) go to the
  solve as ``context``, as plain text, the newest kept when they pass ``MAX_CONTEXT_CHARS``.
- **agent** (everything else: a tool result last, a conversation that offers tools, a question that is not
  code, ``atlas.verify`` false): the whole request goes to the model as the client sent it (``atlas`` removed,
  ``max_tokens`` bounded by the request's token cap) and its answer comes back as it is, ``tool_calls``
  included, with ``model`` renamed; a stream is relayed chunk by chunk as the model writes it.

An agent client such as OpenCode always offers tools, so its turns take the agent path: it gets the model's
tool calls and drives its own loop. A client that wants a verified answer asks for it (``atlas.verify``).

The project (``atlas.project``, or the ``X-Atlas-Project`` header naming only its id; the body wins) must be the
caller's (404 otherwise, as on /v1/solve); the verified solve retrieves from it (and runs its tests when
``atlas.project.tests`` names some). On the agent path, the project code that best matches the conversation's
latest user turn goes to the model as one more system message, after the client's own.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from redis.exceptions import RedisError

from atlas_core.errors import ApiError
from atlas_core.responses import ClosingStreamingResponse
from atlas_engine import (
    CHARS_PER_TOKEN,
    FENCE_TAG,
    LLMUnavailable,
    ProjectRef,
    SolveRequest,
    SolveResult,
    guess_language,
    is_coding_problem,
)
from atlas_pageindex.service import PageIndex
from atlas_pageindex.store import ProjectError
from atlas_rag.deps import CallerId, SettingsDep, SolverDep, TokenCap, require_proxy
from atlas_rag.projects import prepare
from atlas_rag.routes.solve import admit
from atlas_rag.schemas import ChatExtension, ChatMessage, ChatRequest
from atlas_rag.solver import Solver
from atlas_rag.streaming import relay_chat, respond, sse

router = APIRouter(dependencies=[Depends(require_proxy)])
# The earlier turns a verified solve carries: enough for a system prompt and the last few exchanges, small
# enough that k candidates' prompts stay far from the model's context (24,000 characters: 6,000-8,000 tokens).
MAX_CONTEXT_CHARS = 24_000
PROJECT_HEADER = "x-atlas-project"


@router.post("/v1/chat/completions", response_model=None)
async def chat(request: Request, validated: ChatRequest, settings: SettingsDep, solver: SolverDep, cap: TokenCap,
               user: CallerId) -> Response:
    body: dict[str, Any] = await request.json()  # as sent: what is not rag-api's passes through as it came
    ext = validated.atlas or ChatExtension()
    check_tool_messages(validated.messages)
    text = user_text(validated.messages[-1])
    model = str(body.get("model") or "atlas")
    stream = body.get("stream") is True
    options = body.get("stream_options")
    usage_wanted = isinstance(options, dict) and options.get("include_usage") is True
    project = ext.project or header_project(request)
    if not verified_path(validated, ext, text):
        await prepare(request.app.state.pages, project, user, prefix="atlas.")  # another's project: 404
        notes = await project_notes(request.app.state.pages, project, user, validated.messages)
        return await agent_chat(solver, body, model, stream, usage_wanted, cap, settings.rag_max_tokens, notes)
    if text is None:
        raise ApiError(400, "a verified answer ('atlas.verify' or 'atlas.tests') needs the last message to be the "
                       "user's, with text content", param="messages")
    try:
        req = SolveRequest(problem=text, context=conversation_context(validated.messages[:-1]), project=project,
                           language=ext.language or guess_language(text), tests=ext.tests,
                           entry_point=ext.entry_point, budget=ext.budget, seed=ext.seed)
    except ValidationError as exc:
        raise ApiError(400, f"invalid request: {exc.errors()[0]['msg']}", param="messages") from None
    # The project must be the caller's (404 before any work), as on /v1/solve
    workspace = await prepare(request.app.state.pages, project, user, prefix="atlas.")
    state = await admit(solver, req, "atlas.", cap, workspace)
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


def verified_path(request: ChatRequest, ext: ChatExtension, text: str | None) -> bool:
    """The module's rule: whether this request is solved and verified rather than answered by the model alone."""
    if ext.verify is False:
        return False
    if ext.verify is True or ext.tests:
        return True  # the client asked; a request it cannot honour is refused, never quietly answered unverified
    offered = bool(request.tools) or bool((request.model_extra or {}).get("functions"))
    return text is not None and is_coding_problem(text) and (not offered or request.tool_choice == "none")


async def project_notes(pages: PageIndex, project: ProjectRef | None, user: str | None,
                        messages: list[ChatMessage]) -> str | None:
    """The project code that best matches the conversation's latest user turn, for the agent path (None: no
    project, no user turn with text, nothing found, or retrieval failed: the turn goes on without it)."""
    query = next((t for m in reversed(messages) if (t := user_text(m)) is not None), None)
    if project is None or user is None or query is None:
        return None
    try:
        found = await pages.context(user, project.id, query)
    except (ProjectError, RedisError):
        return None
    if found is None:
        return None
    return ("Code from the user's project that may be relevant (each piece is headed by its file and lines):\n"
            + found.text)


async def agent_chat(solver: Solver, body: dict[str, Any], model: str, stream: bool, usage_wanted: bool,
                     cap: int | None, default_max_tokens: int, notes: str | None = None) -> Response:
    """The model answers alone (k = 1) with the client's whole request, tools included, within the request's
    token cap (llama.cpp is told ``max_tokens``); ``notes`` (retrieved project code) joins as a system message
    after the client's own. A stream is relayed as it is written; the model being down is a 503 before any
    byte."""
    forward = {k: v for k, v in body.items() if k not in ("atlas", "model", "stream", "max_completion_tokens")}
    forward["messages"] = [for_model(m) for m in body["messages"]]
    if notes:
        leading = next((i for i, m in enumerate(forward["messages"]) if m.get("role") != "system"),
                       len(forward["messages"]))
        forward["messages"].insert(leading, {"role": "system", "content": notes})
    if not stream:
        forward.pop("stream_options", None)  # OpenAI servers refuse it without a stream
    asked = body.get("max_completion_tokens", body.get("max_tokens"))
    limit = asked if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0 else default_max_tokens
    prompt = len(json.dumps([forward["messages"], body.get("tools")])) // CHARS_PER_TOKEN + 1
    if cap is not None:
        limit = min(limit, cap - prompt)
        if limit < 1:
            raise ApiError(400, "the messages and tools alone take the whole token budget this request reserved; "
                           "send a shorter conversation", param="messages")
    forward["max_tokens"] = limit
    if stream:
        chunks = solver.engine.llm.stream_chat(forward)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = b""
        except LLMUnavailable as exc:
            raise ApiError(503, f"the model is unavailable: {exc}") from None
        except BaseException:  # cancelled while waiting: the slot goes back now, not when collected
            await chunks.aclose()
            raise
        return ClosingStreamingResponse(relay_chat(first, chunks, model=model, usage_wanted=usage_wanted,
                                                   prompt_tokens=prompt),
                                        media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    try:
        answer = await solver.engine.llm.forward_chat(forward)
    except LLMUnavailable as exc:
        raise ApiError(503, f"the model is unavailable: {exc}") from None
    answer["model"] = model
    return JSONResponse(answer)


def for_model(message: dict[str, Any]) -> dict[str, Any]:
    """A turn as every OpenAI-compatible server takes it, meaning unchanged: llama-cpp-python (0.3) refuses the
    ``developer`` role, a null assistant content and content parts outside user turns (a 500), and its chat
    templates fail on an assistant turn without content. So ``developer`` is sent as ``system``, an assistant's
    missing or null content as "", and other turns' parts as their text; everything else as it came."""
    out = dict(message)
    if out.get("role") == "developer":
        out["role"] = "system"
    if out.get("role") == "assistant" and out.get("content") is None:
        out["content"] = ""
    elif out.get("role") != "user" and isinstance(out.get("content"), list):
        out["content"] = text_of(ChatMessage.model_validate(out))
    return out


def check_tool_messages(messages: list[ChatMessage]) -> None:
    """A tool result must say which call it answers, as OpenAI requires (the model pairs them by id)."""
    for n, message in enumerate(messages):
        if message.role == "tool" and not message.tool_call_id:
            raise ApiError(400, "a 'tool' message needs the 'tool_call_id' of the call it answers",
                           param=f"messages.{n}.tool_call_id")


def text_of(message: ChatMessage) -> str:
    """A message's text: its content, or its content parts' text ones in order (images and the like dropped)."""
    content = message.content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content
                         if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return content or ""


def user_text(message: ChatMessage) -> str | None:
    """The problem a verified answer solves: a user turn's text, None for any other turn or an empty one."""
    text = text_of(message) if message.role == "user" else ""
    return text if text.strip() else None


def render(message: ChatMessage) -> str:
    """One earlier turn as plain text for a solve's prompt: who spoke, what was said, which tools were called."""
    label: str = message.role
    if message.role == "tool":
        label = f"tool result ({', '.join(x for x in (message.name, message.tool_call_id) if x)})"
    lines = [f"[{label}]"]
    if text := text_of(message).strip():
        lines.append(text)
    for call in message.tool_calls or []:
        function = call.get("function")
        if isinstance(function, dict):
            lines.append(f"(called {function.get('name', '?')} with {function.get('arguments', '')})")
    return "\n".join(lines)


def conversation_context(earlier: list[ChatMessage], limit: int = MAX_CONTEXT_CHARS) -> str | None:
    """The turns before the problem as plain text, oldest first, in at most ``limit`` characters: the newest are
    kept (the oldest kept one cut at its start when it does not fit whole), with a note of how many were left
    out. None when there were none."""
    budget = limit - 64  # room for the note
    kept: list[str] = []
    used = 0
    for message in reversed(earlier):
        block = render(message)
        room = budget - used
        if len(block) <= room:
            kept.append(block)
            used += len(block) + 2  # and the blank line between turns
            continue
        if room > 200:  # a meaningful tail of the oldest turn kept
            kept.append("[…]" + block[len(block) - room + 3:])
        break
    if not kept:
        return None
    omitted = len(earlier) - len(kept)
    note = [f"[{omitted} earlier message(s) omitted]"] if omitted else []
    return "\n\n".join(note + kept[::-1])


def header_project(request: Request) -> ProjectRef | None:
    """The project ``X-Atlas-Project`` names (its id only: no tests, no file); 400 when it is not a project id."""
    value = request.headers.get(PROJECT_HEADER)
    if value is None:
        return None
    try:
        return ProjectRef(id=value.strip())
    except ValidationError:
        raise ApiError(400, "X-Atlas-Project must be a project id (p_ and 24 hex digits)",
                       param="X-Atlas-Project") from None


def answer_text(result: SolveResult) -> str:
    """The chat answer: the selected program, one line saying what was verified, and one citing the project code
    its prompts carried (when a project was named)."""
    cited = ", ".join(f"{c['path']}:{c['start_line']}-{c['end_line']}" for c in result.citations)
    sources = f"\nProject code used: {cited}" if cited else ""
    if result.code is None:
        return f"I could not produce code for this problem. ({result.summary}){sources}"
    return (f"```{FENCE_TAG.get(result.language, '')}\n{result.code.rstrip()}\n```\n\nVerification: {result.summary}"
            + sources)
