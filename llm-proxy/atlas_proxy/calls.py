"""What the proxy needs to know about a request body, with clear 400s for what is wrong, and what it reserves.

A reservation covers the most the request may spend, so tokens per minute cannot be outrun by asking big:

- a raw completion: the prompt estimate (messages, tools, functions and response format alike: characters / 4)
  plus ``max_tokens`` (or ``max_completion_tokens``, or the default), which the backend is then told, so it can
  never generate past what was reserved;
- an ``atlas`` chat or ``/v1/solve``: the ceiling of its budget (``atlas_core.budget``), which rag-api is told as
  the solve's token cap and never passes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from atlas_core.budget import BudgetDefaults, ceiling_of, prompt_tokens
from atlas_core.errors import error_response

MODEL_NAME = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII: it goes into headers, logs and the database
MAX_TOKENS_CAP = 10_000_000
SOLVE_MODEL = "atlas"  # what /v1/solve runs when the body names no model (rag-api ignores the name)
PROMPT_FIELDS = ("tools", "functions", "response_format", "tool_choice")  # sent to the model besides the messages


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.param, self.status = message, param, status

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, param=self.param)


@dataclass
class Call:
    body: dict[str, Any]
    raw: bytes
    model: str
    stream: bool
    want_usage: bool
    max_tokens: int | None
    prompt_chars: int
    budget: dict[str, Any] | None = None  # an atlas solve's budget (the ``atlas`` extension's, or /v1/solve's)

    def reserve(self, route: str, defaults: BudgetDefaults, default_max_tokens: int) -> int:
        """The tokens to reserve: what this request may spend at most on ``route``."""
        if route == "embed":
            return prompt_tokens(self.prompt_chars)
        if route == "rag":
            return ceiling_of(self.budget, defaults, self.prompt_chars)
        return prompt_tokens(self.prompt_chars) + (self.max_tokens or default_max_tokens)

    def upstream_body(self, route: str, default_max_tokens: int, model: str) -> bytes:
        """The body the backend gets: the backend's own name for a renamed ``model``; a raw model is always told
        its completion limit (llama.cpp knows ``max_tokens``, not ``max_completion_tokens``); rag-api always
        reports a stream's usage, which the proxy meters by (and removes when the client did not ask for it)."""
        body = self.body if model == self.model else self.body | {"model": model}
        if route == "llama":
            limit = self.max_tokens or default_max_tokens
            if body.get("max_tokens") != limit or "max_completion_tokens" in body:
                body = {k: v for k, v in body.items() if k != "max_completion_tokens"} | {"max_tokens": limit}
        elif route == "rag" and self.stream and not self.want_usage and "messages" in body:
            body = body | {"stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        return self.raw if body is self.body else json.dumps(body).encode()


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"request body is larger than {limit} bytes", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"request body is larger than {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _text_size(value: Any) -> int:
    """Characters of text in a prompt, messages or input (the proxy's token estimate is chars / 4)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_size(v) for v in value)
    if isinstance(value, dict):
        return sum(_text_size(v) for k, v in value.items() if k in ("content", "text", "input", "prompt"))
    return 0


def parse(raw: bytes, endpoint: str) -> Call:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if model is None and endpoint == "solve":
        model = SOLVE_MODEL
    if not isinstance(model, str) or not MODEL_NAME.match(model):
        raise BadRequest("'model' is required and must name a model from /v1/models", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object", "stream_options")
    if endpoint == "solve":
        return _solve(body, raw, model, stream)
    max_tokens = _count(body.get("max_completion_tokens", body.get("max_tokens")), "max_tokens")
    field = {"chat": "messages", "completions": "prompt", "embeddings": "input"}[endpoint]
    value = body.get(field)
    if endpoint == "chat" and (not isinstance(value, list) or not value or
                               not all(isinstance(m, dict) for m in value)):
        raise BadRequest("'messages' must be a non-empty list of message objects", "messages")
    if endpoint != "chat" and not isinstance(value, str | list):
        raise BadRequest(f"'{field}' must be a string or a list", field)
    try:
        prompt_chars = _text_size(value)
    except RecursionError:
        raise BadRequest(f"'{field}' is nested too deeply", field) from None
    # Tool and function definitions and a response schema are part of the prompt the model reads.
    prompt_chars += sum(len(json.dumps(body[f])) for f in PROMPT_FIELDS if body.get(f) is not None)
    extension = body.get("atlas")
    if extension is not None and not isinstance(extension, dict):
        raise BadRequest("'atlas' must be an object", "atlas")
    budget = _budget((extension or {}).get("budget"), "atlas.budget") if endpoint == "chat" else None
    return Call(body=body, raw=raw, model=model, stream=stream and endpoint != "embeddings",
                want_usage=bool(options and options.get("include_usage")), max_tokens=max_tokens,
                prompt_chars=prompt_chars, budget=budget)


def _count(value: Any, name: str, low: int = 1) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or
                              not low <= value <= MAX_TOKENS_CAP):
        raise BadRequest(f"'{name}' must be an integer from {low} to {MAX_TOKENS_CAP}", name)
    return value


def _budget(value: Any, name: str) -> dict[str, Any]:
    """A solve's budget object, its fields checked as far as the reservation needs them (rag-api checks the rest,
    with its own bounds)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"'{name}' must be an object", name)
    for field, low in (("k", 1), ("max_tokens", 1), ("repair_rounds", 0)):
        _count(value.get(field), f"{name}.{field}", low)
    if value.get("self_tests") is not None and not isinstance(value["self_tests"], bool):
        raise BadRequest(f"'{name}.self_tests' must be true or false", f"{name}.self_tests")
    return value


def _solve(body: dict[str, Any], raw: bytes, model: str, stream: bool) -> Call:
    """A /v1/solve body: the proxy checks only what it routes and reserves by; rag-api validates the rest."""
    problem = body.get("problem")
    if not isinstance(problem, str) or not problem.strip():
        raise BadRequest("'problem' is required and must be a non-empty string", "problem")
    tests = body.get("tests")
    chars = len(problem) + (len(json.dumps(tests)) if tests is not None else 0)
    # The result event carries its own usage, so there is no OpenAI usage chunk to add (want_usage).
    return Call(body=body, raw=raw, model=model, stream=stream, want_usage=False, max_tokens=None,
                prompt_chars=chars, budget=_budget(body.get("budget"), "budget"))
