"""llm-proxy app factory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress

import aiohttp
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atlas_core.app import open_clients, service_app
from atlas_core.health import http_check, llama_check
from atlas_core.ratelimit import Limiter
from atlas_proxy import events, openapi
from atlas_proxy.forward import Forwarder
from atlas_proxy.keys import KeyCache
from atlas_proxy.metering import Meter
from atlas_proxy.models import ModelCache
from atlas_proxy.routes import routes
from atlas_proxy.settings import Settings
from atlas_proxy.state import ProxyState
from atlas_proxy.stats import ProxyMetrics
from atlas_proxy.tasks import TaskRelay


class OverheadMiddleware:
    """Adds ``x-atlas-overhead-ms``: time spent in the proxy itself, up to the response's first byte, minus
    the time spent waiting for the backend (which the forwarder records on the request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        scope.setdefault("state", {})["arrived"] = start  # latency metrics count from here

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                upstream = scope.get("state", {}).get("upstream_s", 0.0)
                overhead = (time.perf_counter() - start - upstream) * 1000
                message["headers"] = [*message.get("headers", []), (b"x-atlas-overhead-ms", f"{overhead:.2f}".encode())]
            await send(message)

        await self.app(scope, receive, timed)


def backend_session(connections: int, pool_wait_s: float, read_timeout_s: float) -> aiohttp.ClientSession:
    """A connection pool to the backends with a cap and a pool-wait timeout (aiohttp's ``connect`` timeout
    covers the wait for a free connection as well as the connection itself)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(total=None, connect=pool_wait_s, sock_connect=5.0, sock_read=read_timeout_s),
        auto_decompress=False, trust_env=False)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = await open_clients(app, settings, stack)
            redis = app.state.redis
            keys = KeyCache(settings.portal_url, settings.proxy_token, http, settings.proxy_key_cache_s)
            models = ModelCache(settings.portal_url, settings.proxy_token, http)
            limiter = Limiter(redis, settings.proxy_upstream_timeout_s)
            backends = backend_session(settings.proxy_backend_connections, settings.proxy_pool_wait_s,
                                       settings.proxy_upstream_timeout_s)
            stack.push_async_callback(backends.close)
            # Event streams stay open for as long as a task runs: a pool of their own, so they never starve requests.
            streams = backend_session(settings.proxy_stream_connections, settings.proxy_pool_wait_s,
                                      settings.proxy_upstream_timeout_s)
            stack.push_async_callback(streams.close)
            meter = Meter(redis, limiter, settings.proxy_usage_buffer, app.state.metrics.registry, stats)
            stack.push_async_callback(meter.drain)  # runs before Redis and the HTTP client close
            forwarder = Forwarder(settings, backends, meter, stats)
            relay = TaskRelay(settings.rag_url, settings.proxy_token.get_secret_value(), backends, streams, limiter,
                              meter, stats)
            app.state.proxy = ProxyState(settings=settings, keys=keys, models=models, limiter=limiter,
                                         forwarder=forwarder, tasks=relay, stats=stats)
            app.state.readiness["api-portal"] = http_check(http, f"{settings.portal_url}/livez")
            app.state.readiness["llama-server"] = llama_check(http, settings.llama_url)
            for job in (events.listen(redis, keys, models), meter.run()):
                task = asyncio.create_task(job)
                stack.push_async_callback(_cancel, task)
            yield

    app = service_app("llm-proxy", settings.metrics_token, lifespan,
                      max_body_bytes=settings.proxy_max_body_bytes)
    stats = ProxyMetrics(app.state.metrics.registry)
    app.router.routes.extend(routes())
    openapi.install(app)
    app.add_middleware(OverheadMiddleware)
    return app


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
