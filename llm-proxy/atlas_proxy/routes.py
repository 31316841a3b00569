"""The proxy's routes, explicit only (no catch-all): the three OpenAI endpoints, ATLAS's verified solve, the task and
project APIs (relayed to rag-api) and the model list."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atlas_core.budget import ceiling_of
from atlas_core.errors import error_response
from atlas_core.ratelimit import OVER_WHOLE_LIMIT, Decision, Owner
from atlas_core.schemas import KeyInfo
from atlas_proxy.calls import SOLVE_MODEL, BadRequest, parse, read_body
from atlas_proxy.keys import KeyRejected, PortalUnavailable
from atlas_proxy.models import ModelsUnavailable
from atlas_proxy.state import ProxyState

log = logging.getLogger("atlas.proxy")
METERED = "x-atlas-metered"
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings",
             "/v1/solve": "solve"}


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


async def authenticate(request: Request, state: ProxyState) -> KeyInfo:
    key = presented_key(request)
    if key is None:
        state.stats.rejected("auth", "key")
        raise BadRequest("missing API key: send 'Authorization: Bearer sk-llm-...'", status=401)
    try:
        return await state.keys.lookup(key)
    except KeyRejected as exc:
        state.stats.rejected("auth", "key")
        raise BadRequest(str(exc), status=401) from None
    except PortalUnavailable as exc:
        raise BadRequest(f"cannot check API keys right now: {exc}", status=503) from None


async def handle(request: Request, path: str) -> Response:
    state: ProxyState = request.app.state.proxy
    try:
        info = await authenticate(request, state)
        call = parse(await read_body(request, state.settings.proxy_max_body_bytes), ENDPOINTS[path])
        try:
            entry = await state.models.resolve(call.model)
        except ModelsUnavailable as exc:
            raise BadRequest(str(exc), status=503) from None
        if entry is None:
            return error_response(404, f"the model '{call.model}' does not exist; GET /v1/models lists them",
                                  param="model", code="model_not_found")
        if info.allowed_models is not None and call.model not in info.allowed_models:
            raise BadRequest(f"this API key may not use the model '{call.model}'", "model", status=403)
        if path == "/v1/solve":
            if entry.route != "rag":
                raise BadRequest(f"the model '{call.model}' does not run the verified pipeline; /v1/solve takes "
                                 "model 'atlas' (or no model)", "model")
        elif (entry.route == "embed") != (path == "/v1/embeddings"):
            wanted = "/v1/embeddings" if entry.route == "embed" else "/v1/chat/completions or /v1/completions"
            raise BadRequest(f"the model '{call.model}' is served at {wanted}", "model")
    except BadRequest as exc:
        return exc.response()

    reserve = call.reserve(entry.route, state.settings, state.settings.proxy_default_max_tokens)
    admitted = await admit(request, state, info, reserve)
    if isinstance(admitted, Response):
        return admitted
    admission, limit_headers = admitted
    return await state.forwarder.forward(request, path, call, entry, info, admission, reserve, limit_headers)


async def admit(request: Request, state: ProxyState, info: KeyInfo, reserve: int
                ) -> tuple[str | None, dict[str, str]] | Response:
    """``(admission id, response headers)``, or the 429 or 503 that refuses the request. The admission id is
    None when Redis is down and the proxy serves without limits (ATLAS_PROXY_FAIL_OPEN). An admitted request's
    answer, whatever it is, says ``X-Atlas-Metered: 1``: it counts in the key's usage."""
    admission = uuid.uuid4().hex
    try:
        decision = await state.limiter.admit(Owner.of(info), admission, reserve)
    except RedisError as exc:
        if not state.settings.proxy_fail_open:
            return error_response(503, "rate limiting is unavailable (Redis is down); try again shortly")
        log.warning("Redis down, serving without limits (ATLAS_PROXY_FAIL_OPEN): %s", exc)
        return None, {METERED: "1"}
    headers = decision.headers(info)
    if not decision.admitted:
        state.stats.rejected(decision.reason, decision.scope)
        return error_response(429, decision.message, headers=headers, code="rate_limit_exceeded")
    return admission, headers | {METERED: "1"}


def task_reservation(body: bytes, state: ProxyState, info: KeyInfo) -> Response | None:
    """A task whose first attempt alone may spend more than the key's or user's tokens per minute can never run:
    refused now (the worker charges every attempt against those limits as it goes)."""
    try:
        spec = json.loads(body)
        budget = spec.get("budget") if isinstance(spec, dict) else None
        prompt = spec.get("prompt") if isinstance(spec, dict) else None
        ceiling = ceiling_of(budget if isinstance(budget, dict) else None, state.settings,
                             len(prompt) if isinstance(prompt, str) else 0)
    except (ValueError, RecursionError):
        return None  # rag-api says what is wrong with the body
    for limit, scope in ((info.tokens_per_min, "key"), (info.user_tokens_per_min, "user")):
        if limit and ceiling > limit:
            refused = Decision(admitted=False, reason=OVER_WHOLE_LIMIT, scope=scope)
            state.stats.rejected(refused.reason, scope)
            return error_response(429, refused.message + f": one attempt of this task may spend {ceiling} tokens",
                                  code="rate_limit_exceeded")
    return None


async def handle_task(request: Request) -> Response:
    """The task API: authenticated, rate-limited and metered like any request (a stream of events holds no
    concurrency slot once it is open), then relayed to rag-api with the key's owner, who alone may see the task."""
    return await _relay(request, "tasks", "which runs tasks")


async def handle_project(request: Request) -> Response:
    """The project API (PageIndex code retrieval): each call authenticated, counted as one request against the
    key's and user's limits (it spends no tokens) and metered as route ``projects``, then relayed to rag-api with
    the key's owner, who alone may see the project (rag-api answers 404 for anyone else's)."""
    return await _relay(request, "projects", "which serves projects")


async def _relay(request: Request, route: str, what: str) -> Response:
    state: ProxyState = request.app.state.proxy
    try:
        info = await authenticate(request, state)
        if info.allowed_models is not None and SOLVE_MODEL not in info.allowed_models:
            raise BadRequest(f"this API key may not use the model '{SOLVE_MODEL}', {what}", status=403)
        body = await read_body(request, state.settings.proxy_max_body_bytes) if request.method == "POST" else b""
    except BadRequest as exc:
        return exc.response()
    for param, what in (("project_id", "project"), ("task_id", "task")):
        ident = request.path_params.get(param)
        if ident is not None and not IDENT.fullmatch(ident):
            # The path is decoded by now: an id such as ".." would climb out of /v1/projects/ (or /v1/tasks/) once
            # the URL to rag-api is normalised, reaching another of its routes with this user's identity. No real
            # id looks like that.
            return error_response(404, f"the {what} '{ident[:64]}' does not exist", param=param,
                                  code=f"{what}_not_found")
    if route == "tasks" and body and (refused := task_reservation(body, state, info)) is not None:
        return refused
    admitted = await admit(request, state, info, 0)
    if isinstance(admitted, Response):
        return admitted
    admission, headers = admitted
    return await state.tasks.relay(request, body, info, admission, headers, route)


TASK_ROUTES = [("/v1/tasks", ["POST", "GET"]), ("/v1/tasks/{task_id}", ["GET", "DELETE"]),
               ("/v1/tasks/{task_id}/events", ["GET"]), ("/v1/queue/stats", ["GET"])]
PROJECT_ROUTES = [("/v1/projects", ["POST", "GET"]), ("/v1/projects/{project_id}", ["GET", "DELETE"]),
                  ("/v1/projects/{project_id}/diff", ["POST"]), ("/v1/projects/{project_id}/files", ["POST"]),
                  ("/v1/projects/{project_id}/search", ["POST"])]
IDENT = re.compile(r"[A-Za-z0-9_-]{1,64}")  # looser than rag-api's ids: rag-api decides what exists


def routes() -> list[Route]:
    """Plain Starlette routes: these handlers take the raw request and build their own responses, so FastAPI's
    per-request dependency and serialisation layer would be pure overhead on the hottest path."""

    def endpoint(path: str) -> Route:
        async def forwarded(request: Request) -> Response:
            return await handle(request, path)

        return Route(path, forwarded, methods=["POST"], name=ENDPOINTS[path])

    async def models(request: Request) -> Response:
        listed = await _models(request)
        return listed if isinstance(listed, Response) else JSONResponse(listed)

    async def model(request: Request) -> Response:
        listed = await _models(request)
        if isinstance(listed, Response):
            return listed
        name = request.path_params["model"]
        found = next((m for m in listed["data"] if m["id"] == name), None)
        if found is None:
            return error_response(404, f"the model '{name}' does not exist", param="model", code="model_not_found")
        return JSONResponse(found)

    return [
        *(endpoint(path) for path in ENDPOINTS),
        *(Route(path, handle_task, methods=methods) for path, methods in TASK_ROUTES),
        *(Route(path, handle_project, methods=methods) for path, methods in PROJECT_ROUTES),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model:path}", model, methods=["GET"]),
    ]


async def _models(request: Request) -> dict[str, Any] | Response:
    state: ProxyState = request.app.state.proxy
    try:
        info = await authenticate(request, state)
        entries = await state.models.entries()
    except BadRequest as exc:
        return exc.response()
    except ModelsUnavailable as exc:
        return error_response(503, str(exc))
    data = [{"id": e.id, "object": "model", "created": 0, "owned_by": e.owned_by} for e in entries.values()
            if info.allowed_models is None or e.id in info.allowed_models]
    return {"object": "list", "data": data}
