"""api-portal app factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from atlas_core.app import open_clients, service_app
from atlas_core.auth import require_token
from atlas_core.health import Check
from atlas_portal import rollup
from atlas_portal.db import create_schema, make_engine, session_factory
from atlas_portal.registry import ModelRegistry
from atlas_portal.routes import auth, internal, keys, models, usage
from atlas_portal.routes.ui import STATIC, ui_router
from atlas_portal.sessions import Sessions
from atlas_portal.settings import Settings
from atlas_portal.throttle import Throttle

# Nothing the portal accepts comes near this: logins, keys, user changes are a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024


def database_check(engine: AsyncEngine) -> Check:
    async def check() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return check


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = await open_clients(app, settings, stack)
            if settings.database_url is None:
                settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            engine = make_engine(settings.async_database_url())
            stack.push_async_callback(engine.dispose)
            await create_schema(engine)
            app.state.settings = settings
            app.state.sessions = session_factory(engine)
            app.state.registry = registry = ModelRegistry(settings, http, app.state.redis)
            app.state.throttle = Throttle(app.state.redis)
            app.state.login_sessions = Sessions(app.state.redis, settings.jwt_ttl_s, settings.max_sessions_per_user)
            app.state.readiness["database"] = database_check(engine)
            for job in (registry.run(), rollup.run(app.state.redis, app.state.sessions)):
                stack.push_async_callback(_cancel, asyncio.create_task(job))
            yield

    app = service_app("api-portal", settings.metrics_token, lifespan, max_body_bytes=MAX_BODY_BYTES)
    for router in (auth.router, keys.router, usage.router, models.router):
        app.include_router(router)
    app.include_router(internal.proxy_router,
                       dependencies=[Depends(require_token(settings.proxy_token, "ATLAS_PROXY_TOKEN"))])
    app.include_router(internal.host_router,
                       dependencies=[Depends(require_token(settings.recovery_token, "ATLAS_RECOVERY_TOKEN"))])
    app.include_router(ui_router())
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="static")
    return app
