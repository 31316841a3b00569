"""dashboard app factory: the page and its JSON, and the collector that keeps the history in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from atlas_core.app import open_clients, service_app
from atlas_core.health import http_check
from atlas_dashboard.auth import DashboardSessions, Portal
from atlas_dashboard.collector import Collector
from atlas_dashboard.panels import families
from atlas_dashboard.routes import STATIC, api, pages
from atlas_dashboard.settings import Settings

MAX_BODY_BYTES = 16 * 1024  # a sign-in form is the largest body it takes


def create_app(settings: Settings, *, collect: bool = True) -> FastAPI:
    """``collect=False`` serves the page without collecting (a replica that only draws, and the benchmarks)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = await open_clients(app, settings, stack)
            app.state.readiness["api-portal"] = http_check(http, f"{settings.portal_url}/livez")
            app.state.sessions = DashboardSessions(app.state.redis, settings.dashboard_session_ttl_s)
            app.state.portal = Portal(http, settings.portal_url)
            app.state.collector = Collector(app.state.redis, http, settings, families(),
                                            app.state.metrics.registry)
            if collect:
                task = asyncio.create_task(app.state.collector.run())
                stack.push_async_callback(_cancel, task)
            yield

    app = service_app("dashboard", settings.metrics_token, lifespan, max_body_bytes=MAX_BODY_BYTES)
    app.state.settings = settings  # before the lifespan: dependencies read it for every request
    app.include_router(pages)
    app.include_router(api)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
