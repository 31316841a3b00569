"""api-portal app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from atlas_core.app import open_clients, service_app
from atlas_core.health import Check
from atlas_portal.settings import Settings


def database_check(engine: AsyncEngine) -> Check:
    async def check() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return check


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await open_clients(app, settings, stack)
            if settings.database_url is None:
                settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            engine = create_async_engine(settings.async_database_url(), pool_pre_ping=True)
            stack.push_async_callback(engine.dispose)
            app.state.engine = engine
            app.state.readiness["database"] = database_check(engine)
            yield

    return service_app("api-portal", settings.service_token, lifespan)
