"""sandbox app factory: the executor and the token verifier opened in the lifespan, the routes of routes.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from atlas_core.app import open_clients, service_app
from atlas_sandbox.executor import Executor
from atlas_sandbox.metrics import SandboxMetrics
from atlas_sandbox.routes import router
from atlas_sandbox.settings import Settings
from atlas_sandbox.tokens import JtiStore, MemoryJtiStore, RedisJtiStore, Verifier

log = logging.getLogger("atlas.sandbox")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if settings.sandbox_replay_cache == "redis":
                await open_clients(app, settings, stack)
            if settings.sandbox_isolation == "none":
                log.warning("ATLAS_SANDBOX_ISOLATION=none: programs run WITHOUT isolation, as this service's "
                            "user. Development only; never expose this sandbox.")
            executor = await asyncio.to_thread(Executor, settings)
            stack.callback(executor.close)
            await asyncio.to_thread(executor.self_test)
            log.info("sandbox ready", extra={"workers": executor.workers, **executor.features,
                                             "languages": sorted(executor.toolchains)})
            app.state.executor = executor
            used: JtiStore = (RedisJtiStore(app.state.redis) if settings.sandbox_replay_cache == "redis"
                              else MemoryJtiStore())
            app.state.verifier = Verifier(settings.sandbox_verify_key, used)
            yield

    app = service_app("sandbox", settings.metrics_token, lifespan, max_body_bytes=settings.sandbox_max_body_bytes)
    app.state.settings = settings
    app.state.sandbox_metrics = SandboxMetrics(app.state.metrics.registry)
    app.include_router(router)
    return app
