"""``/livez`` (touches nothing) and ``/readyz`` (checks the service's real dependencies).

A service registers its checks in its lifespan: ``app.state.readiness = {"redis": redis_check(redis)}``.
Each check raises on failure, or returns a warning (ready, but heading for trouble: Redis near its maxmemory);
``/readyz`` runs them concurrently with a short timeout and answers 503 with the reason of every failing
dependency, and lists the warnings either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Gauge
from pydantic import SecretStr
from redis.asyncio import Redis

from atlas_core.auth import presents
from atlas_core.errors import RETRY_AFTER_S
from atlas_core.schemas import Liveness, Readiness

Check = Callable[[], Awaitable[str | None]]
CHECK_TIMEOUT_S = 2.0


def redis_check(redis: Redis, alarm: float = 0.8, gauge: Gauge | None = None) -> Check:
    """Redis answers; a warning once its memory passes ``alarm`` of maxmemory (at 100% it refuses writes: no
    task, usage entry or login can be stored), or when it has no maxmemory at all (nothing bounds it then)."""

    async def check() -> str | None:
        used, limit = await memory_use(redis)
        if limit <= 0:
            return "Redis has no maxmemory: set one (atlas up does) so a flood is refused, not fatal to the host"
        ratio = used / limit
        if gauge is not None:
            gauge.set(ratio)
        if ratio >= alarm:
            return (f"Redis uses {used >> 20} MiB of its {limit >> 20} MiB maxmemory ({ratio:.0%}): raise "
                    "ATLAS_REDIS_MAXMEMORY_MB or find what fills it; at 100% writes are refused")
        return None

    return check


async def memory_use(redis: Redis) -> tuple[int, int]:
    """``(used_memory, maxmemory)`` in bytes; maxmemory 0 means Redis has no limit."""
    info = await redis.info("memory")
    return int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))


def http_check(client: httpx.AsyncClient, url: str, token: str | None = None) -> Check:
    """Passes when ``url`` answers 2xx (with ``Authorization: Bearer token`` when given)."""
    headers = {"Authorization": f"Bearer {token}"} if token else None

    async def check() -> None:
        response = await client.get(url, headers=headers, timeout=CHECK_TIMEOUT_S)
        if response.status_code // 100 != 2:
            raise RuntimeError(f"{url} answered {response.status_code}")

    return check


async def run_checks(checks: Mapping[str, Check]) -> tuple[dict[str, str], dict[str, str]]:
    """``(results, warnings)``: "ok" or the reason per check, and the warnings of the checks that passed."""
    async def one(check: Check) -> tuple[str, str | None]:
        try:
            warning = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            return f"timeout after {CHECK_TIMEOUT_S:g}s", None
        except Exception as exc:  # any failure of a dependency is a reason, not a crash
            return f"{type(exc).__name__}: {exc}"[:200], None
        return "ok", warning

    answers = dict(zip(checks, await asyncio.gather(*(one(c) for c in checks.values())), strict=True))
    return ({name: result for name, (result, _) in answers.items()},
            {name: warning for name, (_, warning) in answers.items() if warning})


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
        results, warnings = await run_checks(checks)
        ready = all(v == "ok" for v in results.values())
        if not presents(request, token):
            results = {name: "ok" if v == "ok" else "unavailable" for name, v in results.items()}
            warnings = dict.fromkeys(warnings, "warning")
        body = Readiness(status="ready" if ready else "not ready", service=service, checks=results,
                         warnings=warnings)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503,
                            headers=None if ready else {"Retry-After": str(RETRY_AFTER_S)})

    return router


def llama_check(client: httpx.AsyncClient, base_url: str) -> Check:
    """A llama.cpp server is ready when ``/health`` answers 200 (native llama-server answers 503 while the
    model loads). Not ``/v1/models``: llama-cpp-python serves it behind the lock a running completion holds."""
    return http_check(client, f"{base_url}/health")
