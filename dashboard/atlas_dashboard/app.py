"""dashboard app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from atlas_core.app import open_clients, service_app
from atlas_dashboard.settings import Settings

MAX_BODY_BYTES = 64 * 1024  # it takes no request bodies yet


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await open_clients(app, settings, stack)
            yield

    return service_app("dashboard", settings.metrics_token, lifespan, max_body_bytes=MAX_BODY_BYTES)
