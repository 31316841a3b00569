"""``/livez`` (touches nothing) and ``/readyz`` (checks the service's real dependencies).

A service registers its checks in its lifespan: ``app.state.readiness = {"redis": redis_check(redis)}``.
Each check raises on failure; ``/readyz`` runs them concurrently with a short timeout and answers 503 with
the reason of every failing dependency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from redis.asyncio import Redis

from atlas_core.auth import presents
from atlas_core.schemas import Liveness, Readiness

Check = Callable[[], Awaitable[None]]
CHECK_TIMEOUT_S = 2.0


def redis_check(redis: Redis) -> Check:
    async def check() -> None:
        await redis.ping()

    return check


def http_check(client: httpx.AsyncClient, url: str, token: str | None = None) -> Check:
    """Passes when ``url`` answers 2xx (with ``Authorization: Bearer token`` when given)."""
    headers = {"Authorization": f"Bearer {token}"} if token else None

    async def check() -> None:
        response = await client.get(url, headers=headers, timeout=CHECK_TIMEOUT_S)
        if response.status_code // 100 != 2:
            raise RuntimeError(f"{url} answered {response.status_code}")

    return check


async def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    async def one(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            return f"timeout after {CHECK_TIMEOUT_S:g}s"
        except Exception as exc:  # any failure of a dependency is a reason, not a crash
            return f"{type(exc).__name__}: {exc}"[:200]
        return "ok"

    results = await asyncio.gather(*(one(c) for c in checks.values()))
    return dict(zip(checks, results, strict=False))


def health_router(service: str, token: SecretStr) -> APIRouter:
    """Probes need no credential; the reasons behind a failing check (hosts, driver messages) are shown only
    to a caller presenting ``token``, the others see "unavailable"."""
    router = APIRouter(tags=["health"])

    @router.get("/livez", response_model=Liveness)
    async def livez() -> Liveness:
        return Liveness(service=service)

    @router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    async def readyz(request: Request) -> JSONResponse:
        checks: Mapping[str, Check] = getattr(request.app.state, "readiness", {})
        results = await run_checks(checks)
        ready = all(v == "ok" for v in results.values())
        if not presents(request, token):
            results = {name: "ok" if v == "ok" else "unavailable" for name, v in results.items()}
        body = Readiness(status="ready" if ready else "not ready", service=service, checks=results)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    return router


def llama_check(client: httpx.AsyncClient, base_url: str) -> Check:
    """A llama.cpp server is ready when ``/health`` answers 200 (native llama-server answers 503 while the
    model loads). Not ``/v1/models``: llama-cpp-python serves it behind the lock a running completion holds."""
    return http_check(client, f"{base_url}/health")
