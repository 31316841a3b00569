"""task-worker settings: the engine's (shared with rag-api), the queue's, and the consumer's own."""

from __future__ import annotations

from pydantic import Field

from atlas_core.settings import Port, TaskSettings, host_field
from atlas_engine.settings import EngineSettings
from atlas_lens import LensSettings
from atlas_router import RouterSettings


class Settings(EngineSettings, LensSettings, RouterSettings, TaskSettings):
    port: Port = Field(
        8030, validation_alias="ATLAS_WORKER_PORT",
        description="task-worker health and metrics port (atlas up gives worker i the port + i).")
    host: str = host_field("task-worker", "ATLAS_WORKER_HOST")
    worker_concurrency: int = Field(
        1, ge=1, le=256, description="Tasks one worker runs at once (the model server is usually the limit).")
    worker_visibility_s: float = Field(
        60.0, ge=1, le=3600,
        description="A running task's entry idle this long means its worker stopped: another worker takes it "
        "over. Workers refresh their entries every second, so this only bounds how long a crash delays a task.")
    worker_max_deliveries: int = Field(
        3, ge=1, le=50,
        description="Deliveries before a task that keeps crashing its handler (or its workers) is dead-lettered.")
    worker_retry_backoff_s: float = Field(
        2.0, ge=0, le=600, description="First retry delay after a failure; it doubles per retry (at most 60s).")
    worker_shutdown_grace_s: float = Field(
        5.0, ge=0, le=600,
        description="On SIGTERM, how long running tasks may finish before they are handed back to the queue. "
        "Keep it below ATLAS_STOP_TIMEOUT_S (and Kubernetes' terminationGracePeriodSeconds).")
