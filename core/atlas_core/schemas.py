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
