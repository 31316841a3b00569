"""rag-api app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from atlas_core.app import open_clients, service_app
from atlas_core.health import http_check, llama_check
from atlas_rag.engine import Engine, EngineConfig
from atlas_rag.llm import LLMClient
from atlas_rag.routes import Solver, router
from atlas_rag.sandbox import SandboxClient
from atlas_rag.settings import Settings
from atlas_rag.telemetry import Telemetry


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(k=settings.rag_k, max_tokens=settings.rag_max_tokens,
                        repair_rounds=settings.rag_repair_rounds, deadline_s=settings.rag_deadline_s,
                        self_tests=settings.rag_self_tests, prompt_style=settings.rag_prompt_style)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = await open_clients(app, settings, stack)
            app.state.readiness["llama-server"] = llama_check(http, settings.llama_url)
            app.state.readiness["embedding-server"] = llama_check(http, settings.embed_url)
            app.state.readiness["sandbox"] = http_check(http, f"{settings.sandbox_url}/livez")
            llm = LLMClient(http, settings.llama_url, settings.llama_api_key.get_secret_value(),
                            timeout_s=settings.rag_llm_timeout_s, parallel=settings.rag_llm_parallel)
            sandbox = SandboxClient(http, settings.sandbox_url, settings.sandbox_signing_key.get_secret_value())
            engine = Engine(llm, sandbox, engine_config(settings))
            app.state.solver = Solver(engine, Telemetry(app.state.redis, app.state.metrics.registry),
                                      settings.rag_max_concurrent)
            yield

    app = service_app("rag-api", settings.service_token, lifespan)
    app.include_router(router(settings))
    return app
