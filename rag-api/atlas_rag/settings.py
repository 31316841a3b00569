"""rag-api settings."""

from __future__ import annotations

from pydantic import Field

from atlas_core.settings import Port, ProxyCredential, TaskSettings, host_field
from atlas_engine import EngineSettings
from atlas_lens import LensSettings
from atlas_pageindex.settings import PageIndexSettings
from atlas_router import RouterSettings


class Settings(EngineSettings, LensSettings, RouterSettings, PageIndexSettings, TaskSettings, ProxyCredential):
    port: Port = Field(8001, validation_alias="ATLAS_RAG_PORT", description="rag-api HTTP port.")
    host: str = host_field("rag-api", "ATLAS_RAG_HOST")
    rag_max_body_bytes: int = Field(
        11 * 1024 * 1024, ge=1024, le=1024**3, description="Largest request body rag-api accepts (keep it a little "
        "above ATLAS_PROXY_MAX_BODY_BYTES: the proxy may re-encode a body), in bytes.")
    rag_max_concurrent: int = Field(
        8, ge=1, le=1000,
        description="Solves running at once on all rag-api replicas together, not on each (they share the count "
        "in Redis: it bounds the model servers' load however many replicas run); more get 503 with Retry-After.")
    task_max_queued: int = Field(
        10_000, ge=1, le=10_000_000,
        description="Tasks waiting or running at once; more submissions get 429 until the queue drains.")
    task_max_spec_bytes: int = Field(
        1024 * 1024, ge=1024, le=64 * 1024 * 1024,
        description="Largest task a record may keep (its prompt and tests as JSON), in bytes (413 beyond): a task "
        "is kept for ATLAS_TASK_TTL_S, so this and the per-user bounds bound what tasks hold in Redis.")
    task_keep_per_user: int = Field(
        1_000, ge=10, le=1_000_000,
        description="Task records kept per user; beyond, their oldest finished tasks are deleted at their next "
        "submission.")
    task_default_quota: int = Field(
        100, ge=0, le=10_000_000,
        description="Tasks a user may have waiting or running when the proxy names no limit (the portal's "
        "ATLAS_USER_DEFAULT_TASKS is what users normally get).")
    task_stream_connections: int = Field(
        200, ge=1, le=100_000,
        description="Redis connections for task event streams, apart from those requests use (a stream beyond "
        "waits ATLAS_REDIS_POOL_WAIT_S, then gets 503).")
    task_max_attempts: int = Field(3, ge=1, le=20, description="Attempts a task gets unless it asks otherwise.")
    task_deadline_s: float = Field(
        1800.0, gt=0, le=86400, description="Wall-clock limit of a task, from submission, unless it asks otherwise.")
