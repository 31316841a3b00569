"""task-worker app factory: the worker's health and metrics endpoints (probes and Prometheus need them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from atlas_core.app import open_clients, service_app
from atlas_core.health import http_check, llama_check
from atlas_worker.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = await open_clients(app, settings, stack)
            app.state.readiness["llama-server"] = llama_check(http, settings.llama_url)
            app.state.readiness["sandbox"] = http_check(http, f"{settings.sandbox_url}/livez")
            yield

    return service_app("task-worker", settings.service_token, lifespan)
