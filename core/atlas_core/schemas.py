"""Schemas shared across services."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


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


# Redis names shared by the portal (publisher / consumer) and the proxy (subscriber / producer).
KEY_EVENTS_CHANNEL = "atlas:keys:events"  # {"key_id": N} or {"user_id": N}: drop cached validations now
MODEL_EVENTS_CHANNEL = "atlas:models:events"  # the model registry changed
USAGE_STREAM = "atlas:usage"  # one entry per proxied request (and per finished task)
USAGE_MAXLEN = 1_000_000  # entries kept in the usage stream (about a day at 10 requests/s)
VIRTUAL_MODELS = ("atlas",)  # served by rag-api, listed by the portal beside what the llama servers serve


class KeyInfo(BaseModel):
    """What the portal tells the proxy about a valid ``sk-llm-`` key (never the key or its hash)."""

    key_id: int
    user_id: int
    username: str
    name: str
    rate_limit: int  # requests per minute, 0 = unlimited
    tokens_per_min: int  # 0 = unlimited
    max_concurrent: int  # 0 = unlimited
    allowed_models: list[str] | None = None  # None = every model
    expires_at: float | None = None  # unix seconds


class ModelEntry(BaseModel):
    """One model as users see it, and where the proxy sends it."""

    id: str
    upstream: str  # the name the backend knows
    route: Literal["llama", "embed", "rag"]
    owned_by: str = "atlas"
