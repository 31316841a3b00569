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
from atlas_proxy import events
from atlas_proxy.forward import Forwarder
from atlas_proxy.keys import KeyCache
from atlas_proxy.limits import Limiter
from atlas_proxy.models import ModelCache
from atlas_proxy.routes import routes
from atlas_proxy.settings import Settings
from atlas_proxy.state import ProxyState


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

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                upstream = scope.get("state", {}).get("upstream_s", 0.0)
                overhead = (time.perf_counter() - start - upstream) * 1000
                message["headers"] = [*message.get("headers", []), (b"x-atlas-overhead-ms", f"{overhead:.2f}".encode())]
            await send(message)

        await self.app(scope, receive, timed)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = await open_clients(app, settings, stack)
            redis = app.state.redis
            keys = KeyCache(settings.portal_url, settings.service_token, http, settings.proxy_key_cache_s)
            models = ModelCache(settings.portal_url, settings.service_token, http)
            limiter = Limiter(redis, settings.proxy_upstream_timeout_s)
            backends = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1000, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0,
                                              sock_read=settings.proxy_upstream_timeout_s),
                auto_decompress=False, trust_env=False)
            stack.push_async_callback(backends.close)
            forwarder = Forwarder(settings, backends, limiter, redis)
            stack.push_async_callback(forwarder.drain)  # runs before Redis and the HTTP client close
            app.state.proxy = ProxyState(settings=settings, keys=keys, models=models, limiter=limiter,
                                         forwarder=forwarder)
            app.state.readiness["api-portal"] = http_check(http, f"{settings.portal_url}/livez")
            app.state.readiness["llama-server"] = llama_check(http, settings.llama_url)
            listener = asyncio.create_task(events.listen(redis, keys, models))

            async def stop_listener() -> None:
                listener.cancel()
                with suppress(asyncio.CancelledError):
                    await listener

            stack.push_async_callback(stop_listener)
            yield

    app = service_app("llm-proxy", settings.service_token, lifespan)
    app.router.routes.extend(routes())
    app.add_middleware(OverheadMiddleware)
    return app
