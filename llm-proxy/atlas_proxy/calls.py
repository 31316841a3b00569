"""What the proxy needs to know about a request body, with clear 400s for what is wrong."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from atlas_core.errors import error_response

MODEL_NAME = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII: it goes into headers, logs and the database
MAX_TOKENS_CAP = 10_000_000
SOLVE_MODEL = "atlas"  # what /v1/solve runs when the body names no model (rag-api ignores the name)


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
    return Call(body=body, raw=raw, model=model, stream=stream and endpoint != "embeddings",
                want_usage=bool(options and options.get("include_usage")), max_tokens=max_tokens,
                prompt_chars=prompt_chars)


def _count(value: Any, name: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or
                              not 1 <= value <= MAX_TOKENS_CAP):
        raise BadRequest(f"'{name}' must be an integer from 1 to {MAX_TOKENS_CAP}", name)
    return value


def _solve(body: dict[str, Any], raw: bytes, model: str, stream: bool) -> Call:
    """A /v1/solve body: the proxy checks only what it routes and reserves by; rag-api validates the rest. The
    reservation is every first-round candidate's completion budget (``budget.max_tokens * budget.k``), or
    the proxy's default when the caller leaves either to rag-api; repairs are counted when the answer settles."""
    problem = body.get("problem")
    if not isinstance(problem, str) or not problem.strip():
        raise BadRequest("'problem' is required and must be a non-empty string", "problem")
    budget = {} if body.get("budget") is None else body["budget"]
    if not isinstance(budget, dict):
        raise BadRequest("'budget' must be an object", "budget")
    per_candidate = _count(budget.get("max_tokens"), "budget.max_tokens")
    k = _count(budget.get("k"), "budget.k")
    max_tokens = per_candidate * k if per_candidate is not None and k is not None else None
    # The result event carries its own usage, so there is no OpenAI usage chunk to add (want_usage).
    return Call(body=body, raw=raw, model=model, stream=stream, want_usage=False,
                max_tokens=min(max_tokens, MAX_TOKENS_CAP) if max_tokens is not None else None,
                prompt_chars=len(problem))
