"""rag-api app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from atlas_core.app import open_clients, service_app
from atlas_core.health import http_check, llama_check
from atlas_rag.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = await open_clients(app, settings, stack)
            app.state.readiness["llama-server"] = llama_check(http, settings.llama_url)
            app.state.readiness["embedding-server"] = llama_check(http, settings.embed_url)
            app.state.readiness["sandbox"] = http_check(http, f"{settings.sandbox_url}/livez")
            yield

    return service_app("rag-api", settings.service_token, lifespan)
