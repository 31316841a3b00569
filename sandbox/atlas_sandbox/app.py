"""sandbox app factory: ``POST /execute``, ``POST /judge`` (capability token) and ``GET /languages``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram

from atlas_core.app import open_clients, service_app
from atlas_core.auth import bearer, require_token
from atlas_core.errors import error_response
from atlas_sandbox.engine import BadRequest, Busy, Engine
from atlas_sandbox.files import BadFiles
from atlas_sandbox.limits import Limits
from atlas_sandbox.runner import SandboxFailure
from atlas_sandbox.schemas import ExecuteRequest, ExecuteResponse, JudgeRequest, JudgeResponse
from atlas_sandbox.settings import Settings
from atlas_sandbox.tokens import REJECTION_REASONS, TokenCheckUnavailable, TokenRejected, Verifier

log = logging.getLogger("atlas.sandbox")


class Refused(Exception):
    def __init__(self, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers


T = TypeVar("T")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await open_clients(app, settings, stack)
            if settings.sandbox_isolation == "none":
                log.warning("ATLAS_SANDBOX_ISOLATION=none: programs run WITHOUT isolation, as this service's "
                            "user. Development only; never expose this sandbox.")
            engine = await asyncio.to_thread(Engine, settings)
            stack.callback(engine.close)
            await asyncio.to_thread(engine.self_test)
            log.info("sandbox ready", extra={"workers": engine.workers, **engine.features,
                                             "languages": sorted(engine.toolchains)})
            app.state.engine = engine
            app.state.verifier = Verifier(settings.sandbox_verify_key, app.state.redis)
            yield

    app = service_app("sandbox", settings.metrics_token, lifespan, max_body_bytes=settings.sandbox_max_body_bytes)
    # ``language`` is always the canonical name of a language in languages.LANGUAGES (never the request's raw
    # text, which may be an alias or anything else), so its values are a fixed set.
    runs = Counter("atlas_sandbox_verdicts_total", "Verdicts given, by endpoint, language and verdict",
                   ["endpoint", "language", "verdict"], registry=app.state.metrics.registry)
    run_time = Histogram("atlas_sandbox_request_seconds", "Time to answer /execute and /judge, by language",
                         ["endpoint", "language"], registry=app.state.metrics.registry,
                         buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
    rejections = Counter("atlas_sandbox_token_rejections_total",
                         "Requests refused for their capability token, by reason: missing, invalid, expired, "
                         "reused (already used) or over_limit (asks for more than the token allows: a language "
                         "outside its langs)", ["reason"], registry=app.state.metrics.registry)
    for reason in REJECTION_REASONS:  # every reason is exported from the start, at 0
        rejections.labels(reason)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return error_response(exc.status, exc.message, code=exc.code, headers=exc.headers)

    async def authorise(request: Request, language: str) -> tuple[Engine, Limits, str]:
        """The engine, the limits the token allows and the language's canonical name (a fixed set)."""
        engine: Engine = request.app.state.engine
        try:
            cap = await request.app.state.verifier.check(bearer(request))
        except TokenRejected as exc:
            rejections.labels(exc.reason).inc()
            raise Refused(401, str(exc), "invalid_capability", {"WWW-Authenticate": "Bearer"}) from None
        except TokenCheckUnavailable as exc:
            raise Refused(503, str(exc), "dependency_unavailable", {"Retry-After": "1"}) from None
        try:
            name = engine.toolchain(language).language.name
        except BadRequest as exc:
            raise Refused(400, str(exc), "invalid_language") from None
        if name not in cap.languages:
            rejections.labels("over_limit").inc()
            raise Refused(403, f"language: this capability token allows {', '.join(sorted(cap.languages)) or 'no'}"
                          f" language(s), not {name}", "language_not_allowed")
        return engine, engine.limits.lower(cap.limits), name

    async def serve(engine: Engine, endpoint: str, language: str, work: Callable[[], Awaitable[T]]) -> T:
        try:
            with engine.admit(), run_time.labels(endpoint, language).time():
                return await work()
        except Busy as exc:
            raise Refused(503, str(exc), "sandbox_busy", {"Retry-After": "1"}) from None
        except (BadRequest, BadFiles) as exc:
            raise Refused(400, str(exc), "invalid_request") from None
        except SandboxFailure as exc:  # from any run of the request: never reported as the program's verdict
            log.error("sandbox failure: %s", exc)
            raise Refused(500, f"SandboxError: the sandbox failed, not the program: {exc}", "sandbox_error") \
                from None

    @app.post("/execute", response_model=ExecuteResponse)
    async def execute(body: ExecuteRequest, request: Request) -> ExecuteResponse:
        engine, limits, language = await authorise(request, body.language)
        result = await serve(engine, "execute", language, lambda: engine.execute(body, limits.lower(body.limits)))
        runs.labels("execute", language, result.error_type or "passed").inc()
        return result

    @app.post("/judge", response_model=JudgeResponse)
    async def judge(body: JudgeRequest, request: Request) -> JudgeResponse:
        engine, limits, language = await authorise(request, body.language)
        result = await serve(engine, "judge", language, lambda: engine.judge(body, limits.lower(body.limits)))
        for cand in result.candidates:
            runs.labels("judge", language, cand.verdict).inc()
        return result

    # What is installed and which isolation features are on: operators' information, behind the metrics credential.
    @app.get("/languages", dependencies=[Depends(require_token(settings.metrics_token, "ATLAS_METRICS_TOKEN"))])
    async def languages(request: Request) -> dict[str, object]:
        engine: Engine = request.app.state.engine
        return {"languages": {name: {"version": tc.version, "file": tc.language.source,
                                     "compiled": tc.language.compile is not None}
                              for name, tc in sorted(engine.toolchains.items())},
                "workers": engine.workers, **engine.features}

    return app
