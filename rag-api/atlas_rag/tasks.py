"""The durable tasks behind the task routes (routes/tasks.py): what a submission must be, who owns a task, how a
task reads to its owner, and how its events are followed."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from redis.exceptions import RedisError, ResponseError

from atlas_core.errors import ApiError
from atlas_core.queue import TERMINAL, TaskQueue
from atlas_engine import Engine, ProblemError, TaskRequest
from atlas_rag.settings import Settings

log = logging.getLogger("atlas.rag.tasks")
# How long one read of a task's events waits (a keep-alive goes out after each): under the Redis client's
# 5 s socket timeout (atlas_core.redis), or the wait itself would look like a dead Redis.
FOLLOW_BLOCK_MS = 4_000
EVENT_ID = re.compile(r"\d{1,20}(-\d{1,20})?")  # a stream id, as Last-Event-ID brings it back
UNAVAILABLE = "the task store (Redis) is unavailable; retry shortly"
FLOATS = ("submitted_at", "started_at", "finished_at", "deadline_at")
INTS = ("max_attempts", "deliveries", "attempts_made", "prompt_tokens", "completion_tokens")


class TaskService:
    def __init__(self, queue: TaskQueue, engine: Engine, settings: Settings, streams: TaskQueue) -> None:
        self.queue = queue
        self.engine = engine
        self.settings = settings
        self.streams = streams  # the same queue over the Redis pool kept for event streams

    def spec(self, body: TaskRequest) -> dict[str, Any]:
        """The task as it will be stored, or ApiError (400, 413) for one that cannot run or is too large to
        keep. It is the same parse the worker does: a task that cannot run is refused now, not after queueing."""
        s = self.settings
        try:
            problem = self.engine.start(body.attempt(body.budget.k or s.rag_k, s.rag_deadline_s, 0)).problem
        except ProblemError as exc:
            raise ApiError(400, str(exc), param=exc.field.replace("problem", "prompt", 1)) from None
        if not problem.tests:
            raise ApiError(400, "a task needs tests to verify against: give 'tests', or put examples (doctests, "
                           "asserts, Input/Output samples) in the prompt", param="tests")
        spec = body.model_dump(mode="json", by_alias=True)
        size = len(json.dumps(spec))
        if size > s.task_max_spec_bytes:
            raise ApiError(413, f"this task is {size} bytes as stored; a task may be at most "
                           f"{s.task_max_spec_bytes} (ATLAS_TASK_MAX_SPEC_BYTES): send fewer or shorter tests",
                           param="tests")
        return spec

    async def owned(self, task_id: str, owner: str) -> dict[str, str]:
        """The task's record if ``owner`` owns it; the same 404 for absent and foreign tasks (ids reveal nothing)."""
        record = await self.queue.record(task_id) if len(task_id) <= 64 else None
        if record is None or record.get("owner") != owner:
            raise ApiError(404, f"no task '{task_id[:64]}' for this key's owner", param="task_id",
                           code="task_not_found")
        return record


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
