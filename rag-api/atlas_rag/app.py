"""rag-api app factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress

from fastapi import FastAPI
from redis.exceptions import RedisError

from atlas_core.app import open_clients, service_app
from atlas_core.health import http_check, llama_check
from atlas_core.queue import TaskQueue
from atlas_core.redis import redis_client
from atlas_engine import Telemetry, build_engine, engine_config
from atlas_lens import build_lens
from atlas_rag import revocations
from atlas_rag.projects import ProjectContext, build_pages
from atlas_rag.routes import chat, internal, projects, solve, tasks
from atlas_rag.settings import Settings
from atlas_rag.solver import Admission, Solver
from atlas_rag.tasks import TaskService
from atlas_router import build_router

log = logging.getLogger("atlas.rag")


async def warn_unsafe_redis(queue: TaskQueue) -> None:
    """Tasks live in Redis: an evicting or non-persistent Redis loses them. Say so at start (not fatal: a
    managed Redis may hide its settings, and a development Redis may be deliberately volatile)."""
    try:
        policy = await queue.redis_policy()
    except RedisError:
        return
    if policy["maxmemory_policy"] not in ("noeviction", ""):
        log.warning("Redis maxmemory-policy is %s: queued tasks can be evicted; set noeviction",
                    policy["maxmemory_policy"])
    if policy["appendonly"] == "no":
        log.warning("Redis runs without AOF (appendonly no): a restart can lose queued tasks")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = await open_clients(app, settings, stack)
            registry = app.state.metrics.registry
            app.state.readiness["embedding-server"] = llama_check(http, settings.embed_url)
            app.state.readiness["sandbox"] = http_check(http, f"{settings.sandbox_url}/livez")
            lens = build_lens(http, app.state.redis, settings, registry)
            router = build_router(app.state.redis, lens.sidecar, settings, engine_config(settings), registry)
            engine = build_engine(http, settings, "rag-api", scorer=lens.lens, estimator=lens.lens, router=router,
                                  registry=registry)
            app.state.readiness["llama-server"] = engine.llm.upstreams.ready_check()  # any replica up
            app.state.pages = build_pages(app.state.redis, settings, lens.sidecar, engine.llm, registry)
            engine.context_source = ProjectContext(app.state.pages)
            app.state.solver = Solver(engine, Telemetry(app.state.redis, registry),
                                      Admission(app.state.redis, settings.rag_max_concurrent, registry), lens.feedback)
            queue = TaskQueue(app.state.redis, ttl_s=settings.task_ttl_s, max_queued=settings.task_max_queued,
                              keep_per_owner=settings.task_keep_per_user)
            # Event streams hold a connection for each blocking read: a pool of their own, so however many
            # are open, ordinary requests still get connections.
            streams = redis_client(settings, pool=settings.task_stream_connections)
            stack.push_async_callback(streams.aclose)
            app.state.tasks = TaskService(queue, engine, settings, TaskQueue(streams, ttl_s=settings.task_ttl_s))
            await warn_unsafe_redis(queue)
            listener = asyncio.create_task(revocations.listen(app.state.redis, queue))
            watcher = asyncio.create_task(lens.lens.watch())  # new Lens weights go live without a restart
            # Embeddings and summaries of synced projects, off the request path; one replica per project.
            background = asyncio.create_task(app.state.pages.run_background())
            try:
                yield
            finally:
                for job in (listener, watcher, background):
                    job.cancel()
                    with suppress(asyncio.CancelledError):
                        await job
                await lens.feedback.drain()

    app = service_app("rag-api", settings.metrics_token, lifespan, max_body_bytes=settings.rag_max_body_bytes)
    # Here, not in the lifespan: the routers' credential guards read it, and must refuse callers whether or not
    # the lifespan has run.
    app.state.settings = settings
    for module in (solve, chat, tasks, projects, internal):
        app.include_router(module.router)
    return app
