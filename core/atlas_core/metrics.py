"""Prometheus metrics: a registry per app (never the global one, so apps built in tests don't collide)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atlas_core.auth import require_token

log = logging.getLogger("atlas.metrics")
Refresher = Callable[[], Awaitable[None]]
REFRESH_TIMEOUT_S = 2.0  # a scrape waits at most this long for the refreshers (Prometheus times out at 10 s)


class ServiceMetrics:
    """HTTP request counters and latency histograms of one service; services add their own to ``registry``."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "atlas_http_requests_total",
            "HTTP requests handled",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "atlas_http_request_duration_seconds",
            "Time to the end of the response",
            ["service", "method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.redis_memory = Gauge("atlas_redis_memory_used_ratio", "Redis used_memory / maxmemory, as last seen",
                                  registry=self.registry)
        self.body_refused = Counter("atlas_http_body_too_large_total", "Requests refused for their body size",
                                    ["service"], registry=self.registry)
        self.service = service
        # Awaited by ``GET /metrics`` before it renders: they set gauges read from elsewhere (Redis) at scrape
        # time, which prometheus_client's synchronous collectors cannot do.
        self.refreshers: list[Refresher] = []
        self.refresh_timeout_s = REFRESH_TIMEOUT_S

    async def refresh(self) -> None:
        """Run every refresher, together, each bounded by ``refresh_timeout_s``; one that fails or is too slow is
        logged and skipped (its gauges keep their last values), so an outage never fails the scrape."""
        timeout = self.refresh_timeout_s

        async def one(refresher: Refresher) -> None:
            try:
                async with asyncio.timeout(timeout):
                    await refresher()
            except Exception as exc:  # TimeoutError included
                log.warning("metrics refresher %s failed: %s: %s", getattr(refresher, "__qualname__", refresher),
                            type(exc).__name__, str(exc)[:200])

        await asyncio.gather(*(one(r) for r in list(self.refreshers)))


class MetricsMiddleware:
    """Counts requests by route template (not raw path, which would explode label cardinality)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            labels = (self.metrics.service, scope["method"], route)
            self.metrics.requests.labels(*labels, str(status)).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)


def metrics_router(metrics: ServiceMetrics, token: SecretStr) -> APIRouter:
    """``GET /metrics`` for Prometheus, behind the metrics credential (a scrape config sends it)."""
    router = APIRouter(tags=["metrics"], dependencies=[Depends(require_token(token, "ATLAS_METRICS_TOKEN"))])

    @router.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        await metrics.refresh()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
