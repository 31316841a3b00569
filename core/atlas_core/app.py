"""What every ATLAS service app has: health, metrics, request ids, OpenAI-shaped errors."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atlas_core import __version__
from atlas_core.errors import error_response, install_error_handlers
from atlas_core.health import health_router, redis_check
from atlas_core.http import http_client
from atlas_core.metrics import MetricsMiddleware, ServiceMetrics, metrics_router
from atlas_core.redis import redis_client
from atlas_core.settings import ServiceSettings

log = logging.getLogger("atlas.errors")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class RequestIdMiddleware:
    """Takes a well-formed ``X-Request-Id`` from the caller or makes one, and echoes it on the response.

    It also turns an unhandled exception into one logged traceback and a 500 in OpenAI's shape that names the
    request id, so the client sees no internals and the operator can find the log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        started = False

        async def with_header(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, with_header)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id, "path": scope.get("path")})
            if started:  # the client already has a status line; closing the connection is all that is left
                return
            response = error_response(500, f"internal error (request id {request_id}); the service log has details")
            await response(scope, receive, with_header)


class BodyLimitMiddleware:
    """Refuses a request body over ``limit`` bytes with 413 before the route sees it: at once when the declared
    Content-Length says so, else as soon as the bytes read pass it (the route's read raises, so a handler never
    stores part of an oversized request)."""

    def __init__(self, app: ASGIApp, limit: int, metrics: ServiceMetrics) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics

    def _message(self) -> str:
        return f"request body is larger than this service's limit of {self.limit} bytes; send less"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            self.metrics.body_refused.labels(self.metrics.service).inc()
            await error_response(413, self._message())(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    self.metrics.body_refused.labels(self.metrics.service).inc()
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)


def service_app(service: str, metrics_token: SecretStr, lifespan: Lifespan, *, max_body_bytes: int) -> FastAPI:
    """A FastAPI app with the shared plumbing; the service adds its routes and, in ``lifespan``, its
    clients (on ``app.state``) and readiness checks (``app.state.readiness``).

    ``metrics_token`` guards ``/metrics`` and the reasons on ``/readyz``; ``max_body_bytes`` bounds every request
    body (413 beyond it)."""
    # No interactive docs: they load assets from a CDN (offline installs) and are one more open endpoint. The
    # OpenAPI document is built on demand (``app.openapi()``) for the bound and fuzz tests, never served.
    app = FastAPI(title=f"ATLAS {service}", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    metrics = ServiceMetrics(service)
    app.state.metrics = metrics
    app.state.readiness = {}
    app.state.max_body_bytes = max_body_bytes
    install_error_handlers(app)
    app.include_router(health_router(service, metrics_token))
    app.include_router(metrics_router(metrics, metrics_token))
    app.add_middleware(BodyLimitMiddleware, limit=max_body_bytes, metrics=metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    return app


async def open_clients(app: FastAPI, settings: ServiceSettings, stack: AsyncExitStack) -> httpx.AsyncClient:
    """Open the process's Redis and HTTP clients on ``app.state`` (closed by ``stack``); Redis becomes a
    readiness check. Returns the HTTP client for the service's own checks."""
    redis = redis_client(settings)
    stack.push_async_callback(redis.aclose)
    http = http_client()
    stack.push_async_callback(http.aclose)
    app.state.redis = redis
    app.state.http = http
    app.state.readiness["redis"] = redis_check(redis, settings.redis_memory_alarm, app.state.metrics.redis_memory)
    return http
