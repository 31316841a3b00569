"""The consumer: reads the priority streams, runs tasks through a handler, keeps their entries alive while they
run, takes over tasks of workers that stopped, retries with backoff, dead-letters what keeps failing, and stores
each result once.

Delivery is at least once; the result is exactly once (``TaskQueue.finish`` ignores a second outcome). A task's
entry is acknowledged only after its outcome is stored, so a worker killed at any point loses nothing: its
entries go idle, and after the visibility timeout another worker reclaims them and resumes after the last
finished attempt. A handler that raises is retried with exponential backoff until ``max_deliveries``; a task
delivered that many times (crashes, or workers dying under it) goes to the dead-letter stream with the reason.
A dependency that is down (``atlas_core.errors.Retryable``: the model, the sandbox) is retried without counting:
the task's deadline bounds it. Work that cannot succeed as given (``Unrecoverable``) ends the task at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from atlas_core.errors import Retryable, Unrecoverable
from atlas_core.queue import Delivery, TaskQueue
from atlas_core.ratelimit import Limiter
from atlas_worker.gate import gate_for
from atlas_worker.loop import StopReason, TaskContext, TaskOutcome, summarise
from atlas_worker.metrics import QueueMetrics

log = logging.getLogger("atlas.worker")
Handler = Callable[[TaskContext], Coroutine[Any, Any, TaskOutcome]]
BACKOFF_CAP_S = 60.0


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int = 1
    visibility_s: float = 60.0  # an entry idle this long belongs to a worker that stopped
    max_deliveries: int = 3
    backoff_s: float = 2.0
    block_ms: int = 1000


def consumer_name() -> str:
    """Unique per process and readable in the stats: host, pid and a few random characters."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass
class RunningTask:
    delivery: Delivery
    task: asyncio.Task[None]
    handling: bool = False  # the handler is running (only then may a cancellation interrupt the task)
    cancel_requested: bool = False
    revoked: bool = False
    lost: bool = False
    hand_back: bool = False


class Worker:
    def __init__(self, queue: TaskQueue, handler: Handler, config: WorkerConfig, name: str | None = None,
                 limiter: Limiter | None = None, metrics: QueueMetrics | None = None) -> None:
        self.queue = queue
        self.handler = handler
        self.limiter = limiter  # charges each attempt against its key's and owner's tokens per minute
        # What this worker does, counted (the queue's gauges are read at scrape time); a worker built without a
        # registry (tests, benchmarks) counts into one nobody reads.
        self.metrics = metrics or QueueMetrics(CollectorRegistry())
        self.config = config
        self.name = name or consumer_name()
        self.running: dict[str, RunningTask] = {}
        self.served = 0
        self._stopping = asyncio.Event()
        self._reading_done = asyncio.Event()
        self._beat_s = min(1.0, config.visibility_s / 3)  # also how soon a cancellation is noticed

    # -- the loop -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until ``stop``. Redis going away pauses the loop (with backoff) rather than ending it: the
        client reconnects by itself when Redis is back. Heartbeats go on until the last running task has
        finished or been handed back, so no entry looks abandoned during the shutdown grace."""
        beats = asyncio.create_task(self._heartbeats())
        try:
            await self._serve_forever()
            self._reading_done.set()
            while self.running:
                await asyncio.wait({r.task for r in self.running.values()})
        finally:
            self._reading_done.set()
            beats.cancel()

    async def _serve_forever(self) -> None:
        outage = 0
        maintain_at = 0.0
        while not self._stopping.is_set():
            try:
                if not self.queue.groups_ready:
                    await self.queue.ensure_groups()
                found: list[Delivery] = []
                if time.monotonic() >= maintain_at:
                    await self.queue.promote()
                    if self.free:
                        found = await self.queue.reclaim(self.name, int(self.config.visibility_s * 1000), self.free)
                    maintain_at = time.monotonic() + max(0.2, min(5.0, self.config.visibility_s / 4))
                if self.free - len(found) > 0:
                    block = 0 if found else self.config.block_ms
                    found += await self.queue.read(self.name, self.free - len(found), block)
                if outage:
                    log.info("Redis is back; serving again")
                    outage = 0
            except RedisError as exc:
                if "NOGROUP" in str(exc):
                    self.queue.groups_ready = False
                if not outage:
                    log.warning("Redis unavailable (%s: %s); retrying", type(exc).__name__, str(exc)[:200])
                outage += 1
                await self._pause(min(5.0, 0.2 * 2 ** min(outage, 5)))
                continue
            except Exception:  # a bug must not silently end the loop while the app still looks healthy
                log.exception("worker loop error; retrying")
                await self._pause(1.0)
                continue
            for delivery in found:
                if delivery.key not in self.running:  # a reclaim can return an entry this worker runs already
                    self._start(delivery)
            if not self.free:
                await asyncio.wait({r.task for r in self.running.values()}, timeout=self.config.block_ms / 1000,
                                   return_when=asyncio.FIRST_COMPLETED)

    @property
    def free(self) -> int:
        return max(0, self.config.concurrency - len(self.running))

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._serve(delivery))
        self.running[delivery.key] = RunningTask(delivery, task)
        task.add_done_callback(lambda _: self.running.pop(delivery.key, None))

    async def stop(self, grace_s: float) -> None:
        """Stop reading; give running tasks ``grace_s`` to finish, then hand the rest back (another worker
        resumes them after their last finished attempt)."""
        self._stopping.set()
        with contextlib.suppress(TimeoutError):  # the loop finishes its read (at most block_ms) and starts it
            await asyncio.wait_for(self._reading_done.wait(), self.config.block_ms / 1000 + 5)
        tasks = [r.task for r in self.running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        for r in list(self.running.values()):
            r.hand_back = True
            if r.handling:
                r.task.cancel()
        await asyncio.gather(*(r.task for r in list(self.running.values())), return_exceptions=True)
        with contextlib.suppress(RedisError):
            await self.queue.retire(self.name)

    # -- one task -------------------------------------------------------------------------------------------

    async def _serve(self, d: Delivery) -> None:
        try:
            await self._serve_task(d)
        except RedisError as exc:
            log.warning("lost Redis while serving task %s (%s)", d.task_id, type(exc).__name__)
            await self._requeue_after_outage(d)
        except Exception:
            log.exception("worker error on task %s; it will be reclaimed", d.task_id)

    async def _requeue_after_outage(self, d: Delivery) -> None:
        """Redis went away mid-task: once it is back, queue the task again at once without counting the
        delivery (the outage was not the task's fault). If Redis stays away, the entry is still pending and is
        reclaimed after the visibility timeout."""
        for attempt in range(10):
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
            try:
                await self._send_back(d, 0.0, "Redis was unavailable", counted=False)
                return
            except RedisError:
                continue

    async def _serve_task(self, d: Delivery) -> None:
        begun = await self.queue.begin(d, self.name)
        if begun.first:
            submitted = float(begun.record.get("submitted_at") or begun.record["started_at"])
            self.metrics.wait.observe(max(0.0, float(begun.record["started_at"]) - submitted))
        if begun.state == "revoked":  # its key or owner was revoked after it was submitted: it never runs
            await self._finish(d, begun.record, "cancelled", ended("CANCELLED", REVOKED_MESSAGE, list(begun.history),
                                                                   begun.record))
            return
        if begun.state != "run":
            await self.queue.ack(d)
            return
        record, me = begun.record, self.running[d.key]
        history = list(begun.history)  # with the attempts this delivery records: an early end keeps their work
        if begun.deliveries > self.config.max_deliveries:
            why = record.get("last_error") or "its worker stopped while running it"
            await self._finish(d, record, "dead", ended(
                "UNRECOVERABLE", f"delivered {begun.deliveries - 1} times without finishing; last failure: {why}",
                history, record), dead=True)
            return
        if record.get("cancel") == "1":  # cancelled while its last worker ran it, and that worker died
            await self._finish(d, record, "cancelled", ended("CANCELLED", "cancelled by its owner", history, record))
            return
        if me.hand_back:  # the worker is stopping: it starts nothing new
            await self.queue.hand_back(d, self.name)
            return

        async def emit(kind: str, data: dict[str, Any]) -> None:
            await self.queue.event(d.task_id, kind, data)

        async def record_attempt(attempt: dict[str, Any]) -> None:
            await self.queue.add_attempt(d.task_id, attempt, usage_entry(record, attempt))
            history.append(attempt)

        ctx = TaskContext(task_id=d.task_id, spec=_json(record.get("spec")), record=record, history=begun.history,
                          worker=self.name, emit=emit, record_attempt=record_attempt,
                          deadline_at=float(record.get("deadline_at") or "inf"),
                          max_attempts=int(record.get("max_attempts") or 1),
                          gate=gate_for(self.limiter, record, emit))
        me.handling = True
        try:
            outcome = await self.handler(ctx)
        except asyncio.CancelledError:
            me.handling = False
            if not (me.hand_back or me.lost or me.cancel_requested):
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # our own cancellation, handled here: the task goes on to store the outcome
            if me.hand_back:
                await self.queue.hand_back(d, self.name)
                return
            if me.lost:
                return  # another worker took the task over; its outcome is the one stored
            outcome = ended("CANCELLED", REVOKED_MESSAGE if me.revoked else "cancelled by its owner", history, record)
        except RedisError:
            raise  # not the handler's fault: see _serve
        # Unrecoverable first: a refusal can be both (the sandbox's SandboxRefused is a SandboxUnavailable too).
        except Unrecoverable as exc:
            outcome = ended("UNRECOVERABLE", str(exc), history, record)
        except Retryable as exc:  # a dependency is down (model, sandbox): not the task's fault, so not counted
            await self._retry(d, record, f"{type(exc).__name__}: {exc}", counted=False)
            return
        except Exception as exc:
            log.exception("handler failed on task %s (delivery %d)", d.task_id, begun.deliveries)
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
            if begun.deliveries >= self.config.max_deliveries:
                await self._finish(d, record, "dead", ended(
                    "UNRECOVERABLE", f"the handler failed on all {begun.deliveries} deliveries; last error: {error}",
                    history, record), dead=True)
            else:
                await self._retry(d, record, error, counted=True, deliveries=begun.deliveries)
            return
        finally:
            me.handling = False
        status = "cancelled" if outcome.stop_reason == "CANCELLED" else outcome.status
        await self._finish(d, record, status, outcome)

    async def _heartbeats(self) -> None:
        """Every second, each running handler's entry is refreshed (so no other worker reclaims it); a
        cancellation request, or another worker owning the entry, stops the handler."""
        while True:
            with contextlib.suppress(RedisError):  # the stats miss a beat; nothing else depends on it
                await self.queue.announce(self.name, {"running": len(self.running), "served": self.served,
                                                      "concurrency": self.config.concurrency})
            await asyncio.sleep(self._beat_s)
            await asyncio.gather(*(self._beat(r) for r in list(self.running.values()) if r.handling))

    async def _beat(self, r: RunningTask) -> None:
        try:
            held, stop = await self.queue.heartbeat(r.delivery, self.name)
        except RedisError:
            return  # the entry is safe in Redis; the next beat tries again
        if (stop or not held) and r.handling:
            r.cancel_requested, r.revoked, r.lost = bool(stop), stop == "revoked", not held
            r.task.cancel()

    async def _retry(self, d: Delivery, record: dict[str, str], error: str, *, counted: bool,
                     deliveries: int = 1) -> None:
        outages = int(record.get("outages") or 0)
        step = deliveries if counted else outages + 1
        delay = min(BACKOFF_CAP_S, self.config.backoff_s * 2 ** (step - 1))
        log.warning("task %s will be retried in %.1fs: %s", d.task_id, delay, error)
        await self._send_back(d, delay, error, counted=counted)

    async def _send_back(self, d: Delivery, delay: float, error: str, *, counted: bool) -> None:
        """Back to the queue after ``delay``, counted as a retry when the queue took it back."""
        event = {"delay_s": delay, "error": error, "counted": counted}
        if await self.queue.retry(d, self.name, delay, event, counted=counted, error=error):
            self.metrics.retries.inc()

    async def _finish(self, d: Delivery, record: dict[str, str], status: str, outcome: TaskOutcome, *,
                      dead: bool = False) -> None:
        """Store the outcome (retrying while Redis is away: the work is done and should not be redone)."""
        fields = {"stop_reason": outcome.stop_reason, "message": outcome.message,
                  "result": json.dumps(outcome.result), "attempts_made": str(outcome.attempts),
                  "prompt_tokens": str(outcome.tokens["prompt"]),
                  "completion_tokens": str(outcome.tokens["completion"])}
        submitted = float(record.get("submitted_at") or time.time())
        counts = {status: 1, "attempts": outcome.attempts,
                  "tokens": outcome.tokens["prompt"] + outcome.tokens["completion"],
                  "duration_ms": int((time.time() - submitted) * 1000)}
        event = {"status": status, "stop_reason": outcome.stop_reason, "message": outcome.message}
        dead_letter = {"id": d.task_id, "priority": d.priority, "owner": record.get("owner", ""),
                       "reason": outcome.message, "at": time.time()} if dead else None
        stored = False
        for attempt in range(8):
            try:
                stored = await self.queue.finish(d, status, fields, event, counts, dead_letter,
                                                 owner=record.get("owner", ""))
                break
            except RedisError:
                if attempt == 7:
                    raise
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        self.served += 1
        if stored:  # counted once: a task finished already is not finished again
            started = record.get("started_at")  # none when it never ran (revoked before it started)
            self.metrics.finished(status, time.time() - float(started) if started else None, dead=dead)


REVOKED_MESSAGE = "its API key was revoked, or its owner's account deactivated"


def usage_entry(record: dict[str, str], attempt: dict[str, Any]) -> dict[str, Any] | None:
    """An attempt's tokens as a usage-stream entry of the task's key (``requests`` 0: the submission was the
    request); recorded with the attempt, in one step, so each attempt is metered exactly once."""
    tokens = attempt.get("tokens") or {}
    if not record.get("key_id") or not (tokens.get("prompt") or tokens.get("completion")):
        return None
    return {"ts": attempt.get("finished_at", time.time()), "key_id": record["key_id"],
            "user_id": record.get("owner", ""), "model": "atlas", "status": 200, "requests": 0,
            "prompt_tokens": int(tokens.get("prompt", 0)), "completion_tokens": int(tokens.get("completion", 0)),
            "latency_ms": round((attempt.get("finished_at", 0) - attempt.get("started_at", 0)) * 1000, 1)}


def ended(reason: StopReason, message: str, history: list[dict[str, Any]], record: dict[str, str]) -> TaskOutcome:
    """An outcome the worker decides (cancelled, dead-lettered, refused), keeping what the attempts so far
    produced and spent: their tokens still count against the key."""
    attempts, tokens, result = summarise(history, _json(record.get("spec")).get("language", "python"))
    return TaskOutcome("failed", reason, message, result, attempts, tokens)


def _json(text: str | None) -> dict[str, Any]:
    value = json.loads(text or "{}")
    return value if isinstance(value, dict) else {}
