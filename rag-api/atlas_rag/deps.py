"""rag-api's dependencies as ``Annotated`` aliases, read from ``app.state`` and the headers llm-proxy sets.

They read ``request.headers`` rather than declaring ``Header`` parameters: those would appear in the OpenAPI
document as client inputs, and only the proxy sets them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from pydantic import ValidationError

from atlas_core.auth import require_token
from atlas_core.deps import from_state
from atlas_core.errors import ApiError
from atlas_core.schemas import TaskLimits
from atlas_rag.settings import Settings
from atlas_rag.solver import Solver
from atlas_rag.tasks import TaskService

SettingsDep = Annotated[Settings, Depends(from_state("settings"))]



SolverDep = Annotated[Solver, Depends(from_state("solver"))]



TasksDep = Annotated[TaskService, Depends(from_state("tasks"))]


def _settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def require_proxy(request: Request) -> None:
    """Router guard: only llm-proxy may act for a user (it authenticated the key and names its owner in
    X-Atlas-User-Id)."""
    require_token(_settings_of(request).proxy_token, "ATLAS_PROXY_TOKEN")(request)


def require_metrics(request: Request) -> None:
    """Router guard for the operators' views: the metrics credential (Prometheus and the dashboard hold it)."""
    require_token(_settings_of(request).metrics_token, "ATLAS_METRICS_TOKEN")(request)


def _caller(request: Request) -> str | None:
    return request.headers.get("x-atlas-user-id")


CallerId = Annotated[str | None, Depends(_caller)]
"""The user the proxy acts for, as sent (telemetry names it; a solve needs none)."""


def _owner(request: Request) -> str:
    owner = request.headers.get("x-atlas-user-id", "").strip()
    if not owner:
        raise ApiError(400, "X-Atlas-User-Id is required: tasks belong to a user (the proxy sets it)",
                       param="X-Atlas-User-Id")
    return owner


Owner = Annotated[str, Depends(_owner)]
"""The user the proxy acts for, required: tasks belong to a user."""


def _key_id(request: Request) -> str:
    key_id = request.headers.get("x-atlas-key-id", "")
    return key_id[:20] if key_id.isdigit() else ""


CallerKeyId = Annotated[str, Depends(_key_id)]
"""The id of the key the proxy authenticated, or "" (a task records it, so revoking the key cancels the task)."""


def _token_cap(request: Request) -> int | None:
    value = request.headers.get("x-atlas-token-cap", "")
    return int(value) if value.isdigit() and 0 < len(value) <= 12 else None


TokenCap = Annotated[int | None, Depends(_token_cap)]
"""What the proxy reserved for this request (``X-Atlas-Token-Cap``): the solve never spends more."""


def _limits(request: Request, settings: SettingsDep) -> TaskLimits:
    sent = request.headers.get("x-atlas-limits")
    default = TaskLimits(max_queued_tasks=settings.task_default_quota)
    try:
        return TaskLimits.model_validate_json(sent) if sent else default
    except ValidationError:
        return default


OwnerLimits = Annotated[TaskLimits, Depends(_limits)]
"""The owner's limits as the proxy sent them (``X-Atlas-Limits``); the defaults when it sent none."""


def _last_event_id(request: Request) -> str:
    return request.headers.get("last-event-id", "0")


LastEventId = Annotated[str, Depends(_last_event_id)]
"""Where a reconnecting client left a task's event stream (checked by ``tasks.follow``)."""
