"""The durable task API (reached through the proxy, which authenticates the key and names its owner in
``X-Atlas-User-Id``): submit, read, follow, cancel, list, and the queue's numbers. A task belongs to the owner of
the key that submitted it; anyone else gets 404, as if it did not exist."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from redis.exceptions import RedisError, ResponseError

from atlas_core.auth import require_token
from atlas_core.errors import error_response
from atlas_core.queue import TERMINAL, QueueFull, QuotaReached, TaskQueue
from atlas_core.schemas import TaskLimits
from atlas_rag.engine import Engine
from atlas_rag.problem import ProblemError
from atlas_rag.schemas import TaskRequest
from atlas_rag.settings import Settings

log = logging.getLogger("atlas.rag.tasks")
# How long one read of a task's events waits (a keep-alive goes out after each): under the Redis client's
# 5 s socket timeout (atlas_core.redis), or the wait itself would look like a dead Redis.
FOLLOW_BLOCK_MS = 4_000
EVENT_ID = re.compile(r"\d{1,20}(-\d{1,20})?")  # a stream id, as Last-Event-ID brings it back
UNAVAILABLE = "the task store (Redis) is unavailable; retry shortly"
TaskId = Annotated[str, Path(max_length=200, description="a task id (32 hex digits)")]
FLOATS = ("submitted_at", "started_at", "finished_at", "deadline_at")
INTS = ("max_attempts", "deliveries", "attempts_made", "prompt_tokens", "completion_tokens")


class TaskService:
    def __init__(self, queue: TaskQueue, engine: Engine, settings: Settings, streams: TaskQueue) -> None:
        self.queue = queue
        self.engine = engine
        self.settings = settings
        self.streams = streams  # the same queue over the Redis pool kept for event streams


def limits_of(request: Request, settings: Settings) -> TaskLimits:
    """The owner's limits as the proxy sent them (``X-Atlas-Limits``); the defaults when it sent none."""
    sent = request.headers.get("x-atlas-limits")
    default = TaskLimits(max_queued_tasks=settings.task_default_quota)
    try:
        return TaskLimits.model_validate_json(sent) if sent else default
    except ValidationError:
        return default


def view(record: dict[str, str], attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A task as its owner sees it (no internal fields such as the stream entry or the owner's ids)."""
    spec = json.loads(record.get("spec") or "{}")
    out: dict[str, Any] = {
        "task_id": record["id"], "status": record.get("status"), "priority": record.get("priority"),
        "stop_reason": record.get("stop_reason") or None, "message": record.get("message") or None,
        "cancel_requested": record.get("cancel") == "1" and record.get("status") == "running",
        "project_id": spec.get("project_id"), "language": spec.get("language"),
    }
    for key in FLOATS:
        out[key] = float(record[key]) if record.get(key) else None
    for key in INTS:
        out[key] = int(record.get(key) or 0)
    out["last_error"] = record.get("last_error") or None
    out["result"] = json.loads(record["result"]) if record.get("result") else None
    if attempts is not None:
        out["attempts"] = attempts
    return out


def _owner(request: Request) -> str | Response:
    owner = request.headers.get("x-atlas-user-id", "").strip()
    if not owner:
        return error_response(400, "X-Atlas-User-Id is required: tasks belong to a user (the proxy sets it)",
                              param="X-Atlas-User-Id")
    return owner


def router(settings: Settings) -> APIRouter:
    # Only llm-proxy may act for a user (it authenticated the key and names its owner in X-Atlas-User-Id).
    api = APIRouter(dependencies=[Depends(require_token(settings.proxy_token, "ATLAS_PROXY_TOKEN"))])

    async def owned(request: Request, task_id: str) -> dict[str, str] | Response:
        """The task's record if the caller owns it; a 404 (the same for absent and foreign tasks) otherwise."""
        owner = _owner(request)
        if isinstance(owner, Response):
            return owner
        service: TaskService = request.app.state.tasks
        record = await service.queue.record(task_id) if len(task_id) <= 64 else None
        if record is None or record.get("owner") != owner:
            return error_response(404, f"no task '{task_id[:64]}' for this key's owner", param="task_id",
                                  code="task_not_found")
        return record

    @api.post("/v1/tasks", response_model=None, status_code=202)
    async def submit(body: TaskRequest, request: Request) -> Response:
        owner = _owner(request)
        if isinstance(owner, Response):
            return owner
        service: TaskService = request.app.state.tasks
        s = service.settings
        try:  # the same parse the worker does: a task that cannot run is refused now, not after queueing
            problem = service.engine.start(body.attempt(body.budget.k or s.rag_k, s.rag_deadline_s, 0)).problem
        except ProblemError as exc:
            return error_response(400, str(exc), param=exc.field.replace("problem", "prompt", 1))
        if not problem.tests:
            return error_response(400, "a task needs tests to verify against: give 'tests', or put examples "
                                  "(doctests, asserts, Input/Output samples) in the prompt", param="tests")
        deadline_s = body.deadline_s or s.task_deadline_s
        spec = body.model_dump(mode="json", by_alias=True)
        size = len(json.dumps(spec))
        if size > s.task_max_spec_bytes:
            return error_response(413, f"this task is {size} bytes as stored; a task may be at most "
                                  f"{s.task_max_spec_bytes} (ATLAS_TASK_MAX_SPEC_BYTES): send fewer or shorter tests",
                                  param="tests")
        limits = limits_of(request, s)
        key_id = request.headers.get("x-atlas-key-id", "")
        try:
            task_id = await service.queue.submit(
                spec, owner=owner, priority=body.priority, deadline_s=deadline_s,
                max_attempts=body.max_attempts or s.task_max_attempts, key_id=key_id[:20] if key_id.isdigit() else "",
                quota=limits.max_queued_tasks, limits=limits.model_dump_json())
        except QueueFull as exc:
            return error_response(429, f"{exc}; retry later", code="queue_full", headers={"Retry-After": "10"})
        except QuotaReached as exc:
            return error_response(429, str(exc), code="task_quota", headers={"Retry-After": "10"})
        except RedisError:
            return error_response(503, UNAVAILABLE)
        return JSONResponse({"task_id": task_id, "status": "queued", "priority": body.priority,
                             "deadline_at": time.time() + deadline_s},
                            status_code=202, headers={"Location": f"/v1/tasks/{task_id}"})

    @api.get("/v1/tasks", response_model=None)
    async def listing(request: Request, limit: int = Query(20, ge=1, le=100)) -> Response:
        owner = _owner(request)
        if isinstance(owner, Response):
            return owner
        queue: TaskQueue = request.app.state.tasks.queue
        try:
            records = await queue.records(await queue.owned(owner, limit))
        except RedisError:
            return error_response(503, UNAVAILABLE)
        return JSONResponse({"object": "list", "data": [view(r) for r in records if r.get("owner") == owner]})

    @api.get("/v1/tasks/{task_id}", response_model=None)
    async def read(task_id: TaskId, request: Request) -> Response:
        try:
            record = await owned(request, task_id)
            if isinstance(record, Response):
                return record
            attempts = await request.app.state.tasks.queue.attempts(task_id)
        except RedisError:
            return error_response(503, UNAVAILABLE)
        return JSONResponse(view(record, attempts))

    @api.delete("/v1/tasks/{task_id}", response_model=None)
    async def cancel(task_id: TaskId, request: Request) -> Response:
        try:
            record = await owned(request, task_id)
            if isinstance(record, Response):
                return record
            status = await request.app.state.tasks.queue.cancel(task_id, record["owner"])
        except RedisError:
            return error_response(503, UNAVAILABLE)
        if status in TERMINAL and status != "cancelled":
            return error_response(409, f"task '{task_id}' has already finished ({status}); nothing to cancel",
                                  param="task_id", code="task_finished")
        message = ("cancelled before it started" if status == "cancelled" else
                   "the running attempt stops within about a second")
        return JSONResponse({"task_id": task_id, "status": status, "message": message},
                            status_code=200 if status == "cancelled" else 202)

    @api.get("/v1/tasks/{task_id}/events", response_model=None)
    async def events(task_id: TaskId, request: Request) -> Response:
        try:
            record = await owned(request, task_id)
        except RedisError:
            return error_response(503, UNAVAILABLE)
        if isinstance(record, Response):
            return record
        start = request.headers.get("last-event-id", "0")
        return StreamingResponse(follow(request.app.state.tasks.streams, task_id, start),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @api.get("/v1/queue/stats", response_model=None)
    async def stats(request: Request) -> Response:
        """The queue's numbers as a key holder sees them: depths, counts and the caller's own quota; no host
        names or Redis settings (those are on the operators' /internal/queue/stats)."""
        owner = _owner(request)
        if isinstance(owner, Response):
            return owner
        queue: TaskQueue = request.app.state.tasks.queue
        try:
            numbers = await queue.stats()
            active = len(await queue.active(owner))
        except RedisError:
            return error_response(503, UNAVAILABLE)
        return JSONResponse(numbers | {"mine": {"active": active,
                                                "quota": limits_of(request, settings).max_queued_tasks}})

    return api


def internal_router(settings: Settings) -> APIRouter:
    """Operators' views, behind the metrics credential (Prometheus and the dashboard hold it)."""
    api = APIRouter(prefix="/internal",
                    dependencies=[Depends(require_token(settings.metrics_token, "ATLAS_METRICS_TOKEN"))])

    @api.get("/queue/stats", response_model=None)
    async def stats(request: Request) -> Response:
        queue: TaskQueue = request.app.state.tasks.queue
        try:
            numbers = await queue.stats(detail=True)
            numbers["redis"] = await queue.redis_policy()
        except RedisError:
            return error_response(503, UNAVAILABLE)
        return JSONResponse(numbers)

    return api


async def follow(queue: TaskQueue, task_id: str, after: str) -> AsyncIterator[bytes]:
    """Every event after ``after`` (all of them at first; a reconnecting client sends Last-Event-ID), then new
    ones as they come, until ``done``. Redis going away is said in a comment and retried, not ended on."""
    if not EVENT_ID.fullmatch(after):
        after = "0"
    while True:
        try:
            batch = await queue.events(task_id, after, block_ms=FOLLOW_BLOCK_MS)
        except ResponseError as exc:  # Redis refused the read itself: retrying cannot help
            log.warning("cannot follow task %s: %s", task_id, exc)
            yield _event(after, "error", {"message": "the task's events cannot be read; GET the task instead"})
            return
        except RedisError:
            yield b": the task store is unavailable; retrying\n\n"
            await asyncio.sleep(1.0)
            continue
        if not batch:
            yield b": keep-alive\n\n"
            try:
                record = await queue.record(task_id)
            except RedisError:
                continue
            # Finished: its done event is in the stream (read on), unless the events expired first.
            if (record is None or record.get("status") in TERMINAL) and not await queue.events(task_id, after):
                yield _event(after, "done", {"status": (record or {}).get("status", "expired")})
                return
            continue
        for entry_id, kind, data in batch:
            yield _event(entry_id, kind, data)
            after = entry_id
            if kind == "done":
                return


def _event(entry_id: str, kind: str, data: dict[str, Any]) -> bytes:
    return f"id: {entry_id}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


