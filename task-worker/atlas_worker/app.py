"""task-worker app factory: the consumer runs in the app's lifespan; the app serves health and metrics
(probes and Prometheus need them). SIGTERM ends the lifespan: running tasks get the grace period, then go back
to the queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from atlas_core.app import open_clients, service_app
from atlas_core.health import http_check
from atlas_core.queue import TaskQueue
from atlas_core.ratelimit import Limiter
from atlas_engine.build import build_engine, engine_config
from atlas_engine.telemetry import Telemetry
from atlas_lens import build_lens
from atlas_router import build_router
from atlas_worker.loop import VerifyRepair
from atlas_worker.metrics import QueueMetrics
from atlas_worker.settings import Settings
from atlas_worker.worker import Worker, WorkerConfig

log = logging.getLogger("atlas.worker")
MAX_BODY_BYTES = 64 * 1024  # it serves health and metrics only


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(concurrency=settings.worker_concurrency, visibility_s=settings.worker_visibility_s,
                        max_deliveries=settings.worker_max_deliveries, backoff_s=settings.worker_retry_backoff_s)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = await open_clients(app, settings, stack)
            app.state.readiness["sandbox"] = http_check(http, f"{settings.sandbox_url}/livez")
            queue = TaskQueue(app.state.redis, ttl_s=settings.task_ttl_s)
            registry = app.state.metrics.registry
            telemetry = Telemetry(app.state.redis, registry)  # each attempt's solve, as rag-api records solves
            queue_metrics = QueueMetrics(registry)
            refresh = queue_metrics.refresher(queue)
            app.state.metrics.refreshers.append(refresh)
            stack.callback(app.state.metrics.refreshers.remove, refresh)  # Redis closes with the stack
            lens = build_lens(http, app.state.redis, settings, registry)
            router = build_router(app.state.redis, lens.sidecar, settings, engine_config(settings), registry)
            engine = build_engine(http, settings, "task-worker", scorer=lens.lens, estimator=lens.lens,
                                  router=router, registry=registry)
            app.state.readiness["llama-server"] = engine.llm.upstreams.ready_check()  # any replica up
            watcher = asyncio.create_task(lens.lens.watch())  # new Lens weights go live without a restart
            worker = Worker(queue, VerifyRepair(engine, telemetry, lens.feedback),
                            worker_config(settings), limiter=Limiter(app.state.redis, settings.rag_deadline_s),
                            metrics=queue_metrics)
            app.state.worker = worker
            loop = asyncio.create_task(worker.run())
            log.info("worker %s serving the task queue (%d at a time)", worker.name, settings.worker_concurrency)
            try:
                yield
            finally:
                await worker.stop(settings.worker_shutdown_grace_s)
                loop.cancel()
                watcher.cancel()
                await asyncio.gather(loop, watcher, return_exceptions=True)
                await lens.feedback.drain()

    return service_app("task-worker", settings.metrics_token, lifespan, max_body_bytes=MAX_BODY_BYTES)
