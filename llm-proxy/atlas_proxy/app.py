"""llm-proxy app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from atlas_core.app import open_clients, service_app
from atlas_core.health import http_check, llama_check
from atlas_proxy.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = await open_clients(app, settings, stack)
            app.state.readiness["api-portal"] = http_check(http, f"{settings.portal_url}/livez")
            app.state.readiness["llama-server"] = llama_check(http, settings.llama_url)
            yield

    return service_app("llm-proxy", settings.service_token, lifespan)
