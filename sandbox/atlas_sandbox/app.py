"""sandbox app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from atlas_core.app import open_clients, service_app
from atlas_sandbox.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await open_clients(app, settings, stack)
            yield

    return service_app("sandbox", settings.service_token, lifespan)
