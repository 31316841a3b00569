"""The durable task API (reached through llm-proxy, which authenticates the key and names its owner in
``X-Atlas-User-Id``): submit, read, follow, cancel, list, and the queue's numbers. A task belongs to the owner of
the key that submitted it; anyone else gets 404, as if it did not exist. Errors carry an OpenAI ``code`` where
clients match on one (``task_not_found``, ``queue_full``, ``task_quota``, ``task_finished``)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from redis.exceptions import RedisError

from atlas_core.errors import ApiError
from atlas_core.queue import TERMINAL, QueueFull, QuotaReached
from atlas_engine import TaskRequest
from atlas_rag.deps import CallerKeyId, LastEventId, Owner, OwnerLimits, TasksDep, require_proxy
from atlas_rag.tasks import UNAVAILABLE, follow, view

router = APIRouter(dependencies=[Depends(require_proxy)])
TaskId = Annotated[str, Path(max_length=200, description="a task id (32 hex digits)")]


@router.post("/v1/tasks", response_model=None, status_code=202)
async def submit(body: TaskRequest, owner: Owner, tasks: TasksDep, limits: OwnerLimits, key_id: CallerKeyId
                 ) -> Response:
    spec = tasks.spec(body)
    deadline_s = body.deadline_s or tasks.settings.task_deadline_s
    try:
        task_id = await tasks.queue.submit(
            spec, owner=owner, priority=body.priority, deadline_s=deadline_s,
            max_attempts=body.max_attempts or tasks.settings.task_max_attempts, key_id=key_id,
            quota=limits.max_queued_tasks, limits=limits.model_dump_json())
    except QueueFull as exc:
        raise ApiError(429, f"{exc}; retry later", code="queue_full", headers={"Retry-After": "10"}) from None
    except QuotaReached as exc:
        raise ApiError(429, str(exc), code="task_quota", headers={"Retry-After": "10"}) from None
    except RedisError:
        raise ApiError(503, UNAVAILABLE) from None
    return JSONResponse({"task_id": task_id, "status": "queued", "priority": body.priority,
                         "deadline_at": time.time() + deadline_s},
                        status_code=202, headers={"Location": f"/v1/tasks/{task_id}"})


@router.get("/v1/tasks", response_model=None)
async def listing(owner: Owner, tasks: TasksDep, limit: int = Query(20, ge=1, le=100)) -> Response:
    try:
        records = await tasks.queue.records(await tasks.queue.owned(owner, limit))
    except RedisError:
        raise ApiError(503, UNAVAILABLE) from None
    return JSONResponse({"object": "list", "data": [view(r) for r in records if r.get("owner") == owner]})


@router.get("/v1/tasks/{task_id}", response_model=None)
async def read(task_id: TaskId, owner: Owner, tasks: TasksDep) -> Response:
    try:
        record = await tasks.owned(task_id, owner)
        attempts = await tasks.queue.attempts(task_id)
    except RedisError:
        raise ApiError(503, UNAVAILABLE) from None
    return JSONResponse(view(record, attempts))


@router.delete("/v1/tasks/{task_id}", response_model=None)
async def cancel(task_id: TaskId, owner: Owner, tasks: TasksDep) -> Response:
    try:
        record = await tasks.owned(task_id, owner)
        status = await tasks.queue.cancel(task_id, record["owner"])
    except RedisError:
        raise ApiError(503, UNAVAILABLE) from None
    if status in TERMINAL and status != "cancelled":
        raise ApiError(409, f"task '{task_id}' has already finished ({status}); nothing to cancel",
                       param="task_id", code="task_finished")
    message = ("cancelled before it started" if status == "cancelled" else
               "the running attempt stops within about a second")
    return JSONResponse({"task_id": task_id, "status": status, "message": message},
                        status_code=200 if status == "cancelled" else 202)


@router.get("/v1/tasks/{task_id}/events", response_model=None)
async def events(task_id: TaskId, owner: Owner, tasks: TasksDep, after: LastEventId) -> Response:
    try:
        await tasks.owned(task_id, owner)  # the 404 for a task that is not the caller's
    except RedisError:
        raise ApiError(503, UNAVAILABLE) from None
    return StreamingResponse(follow(tasks.streams, task_id, after), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


@router.get("/v1/queue/stats", response_model=None)
async def stats(owner: Owner, tasks: TasksDep, limits: OwnerLimits) -> Response:
    """The queue's numbers as a key holder sees them: depths, counts and the caller's own quota; no host
    names or Redis settings (those are on the operators' /internal/queue/stats)."""
    try:
        numbers = await tasks.queue.stats()
        active = len(await tasks.queue.active(owner))
    except RedisError:
        raise ApiError(503, UNAVAILABLE) from None
    return JSONResponse(numbers | {"mine": {"active": active, "quota": limits.max_queued_tasks}})
