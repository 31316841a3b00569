"""Schemas shared across services."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A request body that refuses fields it does not know (a typo is a 400 naming it, not a silent default)."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error shape, used by every ATLAS service so clients parse one format."""

    error: ErrorBody


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"
    service: str


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    service: str
    checks: dict[str, str]
    warnings: dict[str, str] = {}  # checks that pass but need attention (Redis near its maxmemory)


# Redis names shared by the portal (publisher / consumer) and the proxy (subscriber / producer).
KEY_EVENTS_CHANNEL = "atlas:keys:events"  # {"key_id": N} or {"user_id": N}: drop cached validations now
MODEL_EVENTS_CHANNEL = "atlas:models:events"  # the model registry changed
USAGE_STREAM = "atlas:usage"  # one entry per admitted request, and one per task attempt (requests=0)
USAGE_MAXLEN = 1_000_000  # entries kept in the usage stream (about a day at 10 requests/s)
REVOKED = "atlas:revoked"  # sorted set: "k:{key_id}" / "u:{user_id}" by revocation time; workers cancel their tasks
REVOKED_KEEP_S = 2 * 86400  # longer than any task may wait (deadline <= 1 day): older entries are dropped
VIRTUAL_MODELS = ("atlas",)  # served by rag-api, listed by the portal beside what the llama servers serve


class KeyInfo(BaseModel):
    """What the portal tells the proxy about a valid ``sk-llm-`` key (never the key or its hash): the key's limits
    and its owner's, which every key of that user shares (0 = unlimited throughout)."""

    key_id: int
    user_id: int
    username: str
    name: str
    is_admin: bool = False
    rate_limit: int  # requests per minute
    tokens_per_min: int
    max_concurrent: int
    max_streams: int = 0  # task event streams open at once
    allowed_models: list[str] | None = None  # None = every model
    expires_at: float | None = None  # unix seconds
    user_rate_limit: int = 0
    user_tokens_per_min: int = 0
    user_max_concurrent: int = 0
    user_max_streams: int = 0
    user_max_queued_tasks: int = 0  # tasks waiting or running at once


class TaskLimits(BaseModel):
    """What the proxy tells rag-api about a task's owner when it submits one (``X-Atlas-Limits``): the worker
    charges every attempt against these tokens per minute, and rag-api keeps the owner under their task quota."""

    key_tokens_per_min: int = 0
    user_tokens_per_min: int = 0
    max_queued_tasks: int = 0


class ModelEntry(BaseModel):
    """One model as users see it, and where the proxy sends it."""

    id: str
    upstream: str  # the name the backend knows
    route: Literal["llama", "embed", "rag"]
    owned_by: str = "atlas"
