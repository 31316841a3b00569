"""The durable task queue on Redis Streams, shared by rag-api (submit, read, cancel, stats) and the task-workers
(consume, heartbeat, reclaim, retry, finish).

Layout (one Redis; every multi-key step is a Lua script in ``atlas_core/lua/queue_*.lua``, so it is atomic; keys
a script builds itself, such as ``'atlas:task:' .. id``, all match the queue's ACL patterns):

- ``atlas:tasks:p0|p1|p2``: one stream per priority, consumer group ``task-workers``. An entry is only a
  task id; it stays in the stream while the task is queued or running and is acknowledged *and deleted*
  once the result is stored, so the streams' length is the work in the system (the bound counts it).
- ``atlas:task:{id}``: the task's record (a hash); ``...:attempts`` (a list of JSON attempts and
  interruptions); ``...:events`` (a stream the SSE endpoint follows). All three expire ``ttl_s`` after the
  last change.
- ``atlas:tasks:delayed``: tasks waiting out a retry backoff (a sorted set by due time, ``priority|id``).
- ``atlas:tasks:dead``: the dead-letter stream, with the reason.
- ``atlas:tasks:owner:{user}``: the owner's task ids by submission time (for listing), and the records kept per
  owner: beyond ``keep_per_owner`` the oldest finished ones are deleted when the owner submits another.
- ``atlas:tasks:active:{user}``: the owner's tasks waiting or running, which their quota bounds.
- ``atlas:tasks:recent``: the newest 200 task ids of everyone, by submission time (the dashboard lists them).
- ``atlas:tasks:metrics:{YYYY-MM-DD}``: per-day counters for the dashboard (kept 40 days).

A worker holding an entry refreshes its idle time (heartbeat); an entry idle longer than the visibility timeout
belongs to a worker that stopped, and another worker takes it over with XAUTOCLAIM. Results are written once:
a record that is already finished ignores later writes, so a task run twice still has exactly one result."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from atlas_core.lua import source
from atlas_core.schemas import REVOKED, USAGE_MAXLEN, USAGE_STREAM

Priority = Literal["p0", "p1", "p2"]
PRIORITIES: tuple[Priority, ...] = ("p0", "p1", "p2")
GROUP = "task-workers"
DELAYED = "atlas:tasks:delayed"
DEAD = "atlas:tasks:dead"
RECENT = "atlas:tasks:recent"  # the newest RECENT_KEPT task ids of every owner, by submission time (the dashboard's)
RECENT_KEPT = 200
WORKERS = "atlas:tasks:workers"  # hash: worker name -> JSON {seen, running, served, concurrency}
WORKER_GONE_S = 3600  # a worker silent this long is dropped from the hash (one silent 10 s is listed as stale)
DEAD_MAXLEN = 10_000
EVENTS_MAXLEN = 2_000  # per task: enough for every progress line of a long task, bounded all the same
METRICS_TTL_S = 40 * 86400
TERMINAL = ("succeeded", "failed", "cancelled", "dead")
StopReason = Literal["SUCCESS", "MAX_ATTEMPTS", "DEADLINE", "CANCELLED", "UNRECOVERABLE"]
# Each operation's script (atlas_core/lua/queue_*.lua), after the functions it calls.
SCRIPTS = {
    "submit": source("queue_lib_finished", "queue_submit"),
    "begin": source("queue_lib_finished", "queue_lib_revoked", "queue_begin"),
    "heartbeat": source("queue_lib_revoked", "queue_heartbeat"),
    "finish": source("queue_lib_finished", "queue_finish"),
    "retry": source("queue_lib_finished", "queue_retry"),
    "promote": source("queue_promote"),
    "cancel": source("queue_cancel"),
    "read": source("queue_read"),
    "hand_back": source("queue_hand_back"),
    "add_attempt": source("queue_add_attempt"),
}
# Priority reading order by turn: under a full load p0, p1 and p2 get 4:2:1 of the reads, so p2 is never starved.
TURNS: tuple[tuple[Priority, ...], ...] = (
    ("p0", "p1", "p2"), ("p0", "p1", "p2"), ("p1", "p0", "p2"), ("p0", "p1", "p2"),
    ("p0", "p1", "p2"), ("p1", "p0", "p2"), ("p2", "p0", "p1"),
)


def stream_key(priority: str) -> str:
    return f"atlas:tasks:{priority}"


def record_key(task_id: str) -> str:
    return f"atlas:task:{task_id}"


def events_key(task_id: str) -> str:
    return f"atlas:task:{task_id}:events"


def attempts_key(task_id: str) -> str:
    return f"atlas:task:{task_id}:attempts"


def owner_key(owner: str) -> str:
    return f"atlas:tasks:owner:{owner}"


def active_key(owner: str) -> str:
    return f"atlas:tasks:active:{owner}"


def metrics_key(when: float | None = None) -> str:
    day = datetime.fromtimestamp(when if when is not None else time.time(), UTC).strftime("%Y-%m-%d")
    return f"atlas:tasks:metrics:{day}"


class QueueFull(Exception):
    def __init__(self, queued: int, limit: int) -> None:
        super().__init__(f"the task queue is full ({queued} tasks waiting or running, limit {limit})")
        self.queued = queued
        self.limit = limit


class QuotaReached(Exception):
    """The owner has as many tasks waiting or running as their quota allows."""

    def __init__(self, active: int, quota: int) -> None:
        super().__init__(f"you have {active} tasks waiting or running, the most your account may have at once "
                         f"({quota}); wait for one to finish or cancel one")
        self.active = active
        self.quota = quota


@dataclass(frozen=True)
class Delivery:
    priority: Priority
    entry: str
    task_id: str

    @property
    def key(self) -> str:
        """Unique among deliveries: an entry id is unique only within its stream."""
        return f"{self.priority}:{self.entry}"


@dataclass(frozen=True)
class Begun:
    state: Literal["run", "skip", "gone", "revoked"]
    deliveries: int
    record: dict[str, str]
    history: list[dict[str, Any]]
    first: bool = False  # this call started the task (set its ``started_at``): its first delivery that ran


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


class TaskQueue:
    """Every queue operation; ``redis`` is a client with ``decode_responses=False`` (the services' default)."""

    def __init__(self, redis: Redis, *, ttl_s: int = 7 * 86400, max_queued: int = 10_000,
                 keep_per_owner: int = 1_000) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.max_queued = max_queued
        self.keep_per_owner = keep_per_owner
        self._scripts = {name: redis.register_script(body) for name, body in SCRIPTS.items()}
        self._cursors = dict.fromkeys(PRIORITIES, "0-0")
        self._turn = 0
        self.groups_ready = False

    async def ensure_groups(self) -> None:
        """Create the consumer group on each stream (from the start, so nothing queued before is skipped).
        Consumers call it again after a NOGROUP error: a Redis that restarted without its data."""
        for priority in PRIORITIES:
            try:
                await self.redis.xgroup_create(stream_key(priority), GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self.groups_ready = True

    # -- the API side ---------------------------------------------------------------------------------------

    async def submit(self, spec: dict[str, Any], *, owner: str, priority: Priority, deadline_s: float,
                     max_attempts: int, key_id: str = "", quota: int = 0, limits: str = "") -> str:
        """Queue a task; QueueFull when the queue's bound is reached, QuotaReached when the owner's ``quota`` of
        tasks waiting or running is (nothing is written then). ``limits`` (JSON) is kept for the worker."""
        task_id = uuid.uuid4().hex
        now = time.time()
        fields = {"id": task_id, "owner": owner, "key_id": key_id, "priority": priority, "status": "queued",
                  "spec": json.dumps(spec), "submitted_at": repr(now), "deadline_at": repr(now + deadline_s),
                  "max_attempts": str(max_attempts), "deliveries": "0", "cancel": "0", "limits": limits}
        keys = [stream_key(priority), record_key(task_id), events_key(task_id), metrics_key(now),
                owner_key(owner), *(stream_key(p) for p in PRIORITIES), DELAYED, active_key(owner), RECENT]
        event = json.dumps({"priority": priority})
        args: list[str | int] = [task_id, self.max_queued, self.ttl_s, repr(now), repr(now - self.ttl_s), event,
                                 quota, self.keep_per_owner, *(x for pair in fields.items() for x in pair)]
        code, count = await self._scripts["submit"](keys=keys, args=args)
        if int(code) == 2:
            raise QueueFull(int(count), self.max_queued)
        if int(code) == 3:
            raise QuotaReached(int(count), quota)
        return task_id

    async def record(self, task_id: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(record_key(task_id))
        return _decode(raw) if raw else None

    async def records(self, task_ids: list[str]) -> list[dict[str, str]]:
        """The records of these tasks that still exist, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(record_key(task_id))
            return [_decode(raw) for raw in await pipe.execute() if raw]

    async def attempts(self, task_id: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in await self.redis.lrange(attempts_key(task_id), 0, -1)]

    async def owned(self, owner: str, limit: int) -> list[str]:
        return [_text(x) for x in await self.redis.zrevrange(owner_key(owner), 0, limit - 1)]

    async def events(self, task_id: str, after: str = "0", block_ms: int | None = None
                     ) -> list[tuple[str, str, dict[str, Any]]]:
        """Events after the stream id ``after``: (id, type, data). With ``block_ms``, waits that long for one."""
        answer: Any = await self.redis.xread({events_key(task_id): after}, count=100, block=block_ms)
        out = []
        for _, entries in answer or []:
            for entry_id, fields in entries:
                f = _decode(fields)
                out.append((_text(entry_id), f.get("type", ""), json.loads(f.get("data") or "{}")))
        return out

    async def cancel(self, task_id: str, owner: str, message: str = "cancelled by its owner") -> str:
        """The status after the request: cancelled (it had not started), cancelling (the worker stops it within
        about a second), or the finished status it already had; '' when there is no such task."""
        now = time.time()
        keys = [record_key(task_id), events_key(task_id), DELAYED, metrics_key(now), active_key(owner)]
        return _text(await self._scripts["cancel"](keys=keys, args=[repr(now), self.ttl_s, message]))

    async def active(self, owner: str) -> list[str]:
        """The owner's tasks waiting or running (a finished one may linger until their next submission)."""
        return [_text(x) for x in await self.redis.zrange(active_key(owner), 0, -1)]

    async def stats(self, *, detail: bool = False) -> dict[str, Any]:
        """The queue's numbers. Worker names (host names) only with ``detail``: operators see them, key holders
        see how many workers are alive."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in PRIORITIES:
                pipe.xlen(stream_key(p))
            for p in PRIORITIES:
                pipe.xpending(stream_key(p), GROUP)
            pipe.zcard(DELAYED)
            pipe.xlen(DEAD)
            pipe.hgetall(metrics_key())
            pipe.hgetall(WORKERS)
            answers = await pipe.execute(raise_on_error=False)
        lengths, pending = answers[0:3], answers[3:6]
        running = {p: int(x["pending"]) if isinstance(x, dict) else 0 for p, x in zip(PRIORITIES, pending, strict=True)}
        now, workers = time.time(), []
        for name, raw in sorted(_decode(answers[9] or {}).items()):
            info = json.loads(raw)
            if now - info["seen"] > WORKER_GONE_S:
                await self.redis.hdel(WORKERS, name)
                continue
            workers.append({"name": name, "alive": now - info["seen"] < 10, "seen_s_ago": round(now - info["seen"], 1),
                            **{k: v for k, v in info.items() if k != "seen"}})
        numbers: dict[str, Any] = {
            "queued": {p: int(n) - running[p] for p, n in zip(PRIORITIES, lengths, strict=True)},
            "running": sum(running.values()),
            "retrying": int(answers[6]),
            "dead_letter": int(answers[7]),
            "limit": self.max_queued,
            "today": {k: int(v) for k, v in _decode(answers[8] or {}).items()},
            "workers_alive": sum(1 for w in workers if w["alive"]),
        }
        if detail:
            numbers["workers"] = workers
        return numbers

    async def announce(self, worker: str, info: dict[str, Any]) -> None:
        """A worker says it is alive (every second) and what it does, for the stats."""
        await self.redis.hset(WORKERS, worker, json.dumps({"seen": time.time(), **info}))

    async def retire(self, worker: str) -> None:
        await self.redis.hdel(WORKERS, worker)

    # -- the worker side ------------------------------------------------------------------------------------

    async def read(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        """Up to ``count`` new entries, priorities read in the order of this turn (see TURNS); waits up to
        ``block_ms`` when every stream is empty."""
        order = TURNS[self._turn % len(TURNS)]
        self._turn += 1
        keys = [stream_key(p) for p in order]
        found, answer = await self._scripts["read"](keys=keys, args=[GROUP, consumer, count])
        if int(found):
            by_key = dict(zip(keys, order, strict=True))
            return [Delivery(by_key[_text(key)], _text(entry), _text(fields[fields.index(b"id") + 1]))
                    for key, entry, fields in answer]
        if block_ms > 0:
            await self.redis.xread({k: _text(i) for k, i in zip(keys, answer, strict=True)},
                                   count=1, block=block_ms)
        return []

    @staticmethod
    def _deliveries(priority: Priority, entries: Any) -> list[Delivery]:
        # a deleted entry still pending comes back without fields
        return [Delivery(priority, _text(entry_id), _text(fields[b"id"])) for entry_id, fields in entries or []
                if fields]

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int) -> list[Delivery]:
        """Entries idle past the visibility timeout (their worker stopped): now this consumer's."""
        found: list[Delivery] = []
        for priority in PRIORITIES:
            if len(found) >= count:
                break
            # XAUTOCLAIM scans at most 10 x count pending entries a call: the cursor carries the scan on through
            # many healthy running entries, so an idle one far back is still reached.
            answer = await self.redis.xautoclaim(stream_key(priority), GROUP, consumer, min_idle_ms,
                                                 start_id=self._cursors[priority], count=count - len(found))
            self._cursors[priority] = _text(answer[0])
            found += self._deliveries(priority, answer[1])
        return found

    async def promote(self, limit: int = 100) -> int:
        return int(await self._scripts["promote"](keys=[DELAYED], args=[repr(time.time()), limit]))

    async def begin(self, delivery: Delivery, consumer: str) -> Begun:
        tid, now = delivery.task_id, repr(time.time())
        answer = await self._scripts["begin"](keys=[record_key(tid), events_key(tid), attempts_key(tid), REVOKED],
                                              args=[consumer, now, delivery.entry, self.ttl_s])
        flat = answer[2] if len(answer) > 2 else []
        record = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        history = [json.loads(x) for x in (answer[3] if len(answer) > 3 else [])]
        state = _text(answer[0])
        # BEGIN sets started_at only if it has none (HSETNX): it holds this call's time exactly when this call set it
        return Begun(state, int(answer[1]), record, history,  # type: ignore[arg-type]
                     first=state == "run" and record.get("started_at") == now)

    async def ack(self, delivery: Delivery) -> None:
        """Drop an entry whose task needs nothing more (finished or cancelled before it started, or expired)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(stream_key(delivery.priority), GROUP, delivery.entry)
            pipe.xdel(stream_key(delivery.priority), delivery.entry)
            await pipe.execute()

    async def heartbeat(self, delivery: Delivery, consumer: str) -> tuple[bool, str]:
        """(still held by this consumer, "" or why it must stop: "cancelled" by its owner, or "revoked")."""
        tid = delivery.task_id
        held, cancel = await self._scripts["heartbeat"](
            keys=[stream_key(delivery.priority), record_key(tid), events_key(tid), attempts_key(tid), REVOKED],
            args=[GROUP, consumer, delivery.entry, repr(time.time()), self.ttl_s])
        return bool(int(held)), {"1": "cancelled", "revoked": "revoked"}.get(_text(cancel), "")

    async def event(self, task_id: str, kind: str, data: dict[str, Any]) -> None:
        await self.redis.xadd(events_key(task_id), {"type": kind, "data": json.dumps(data)},
                              maxlen=EVENTS_MAXLEN, approximate=True)

    async def add_attempt(self, task_id: str, attempt: dict[str, Any], usage: dict[str, Any] | None = None) -> None:
        """Record an attempt, once, with ``usage`` (a usage-stream entry) metered in the same step."""
        fields = [x for pair in (usage or {}).items() for x in pair] or [""]
        await self._scripts["add_attempt"](keys=[attempts_key(task_id), USAGE_STREAM],
                                           args=[json.dumps(attempt), int(attempt["n"]), self.ttl_s, USAGE_MAXLEN,
                                                 *fields])

    async def finish(self, delivery: Delivery, status: str, fields: dict[str, str], event: dict[str, Any],
                     counts: dict[str, int], dead_letter: dict[str, Any] | None = None, owner: str = "") -> bool:
        """Acknowledge the entry and store the outcome, once: False when the task had finished already."""
        tid = delivery.task_id
        fields = {"finished_at": repr(time.time()), **fields}
        keys = [stream_key(delivery.priority), record_key(tid), events_key(tid), attempts_key(tid), metrics_key(),
                DEAD, active_key(owner)]
        args: list[str | int] = [GROUP, delivery.entry, self.ttl_s, status, json.dumps(event),
                                 json.dumps(dead_letter) if dead_letter else "", json.dumps(counts), tid,
                                 *(x for pair in fields.items() for x in pair)]
        return bool(await self._scripts["finish"](keys=keys, args=args))

    async def retry(self, delivery: Delivery, consumer: str, delay_s: float, event: dict[str, Any], *,
                    counted: bool, error: str) -> bool:
        """Back off ``delay_s`` and queue again. A delivery that is not ``counted`` (a dependency was down)
        does not bring the task closer to the dead-letter stream."""
        tid = delivery.task_id
        keys = [stream_key(delivery.priority), record_key(tid), events_key(tid), DELAYED]
        args = [GROUP, delivery.entry, repr(time.time() + delay_s), f"{delivery.priority}|{tid}", json.dumps(event),
                "1" if counted else "0", error, consumer]
        return bool(await self._scripts["retry"](keys=keys, args=args))

    async def hand_back(self, delivery: Delivery, consumer: str) -> bool:
        """Give a running task back at shutdown (see lua/queue_hand_back.lua); False when it is not this consumer's
        any more."""
        tid = delivery.task_id
        return bool(await self._scripts["hand_back"](keys=[stream_key(delivery.priority), record_key(tid),
                                                           events_key(tid)], args=[GROUP, consumer, delivery.entry]))

    async def redis_policy(self) -> dict[str, str]:
        """The settings that make Redis safe for a queue: noeviction, and persistence (AOF). From INFO, which every
        service's Redis user may run (CONFIG GET is an administrator's command, and would show secrets)."""
        memory = await self.redis.info("memory")
        persistence = await self.redis.info("persistence")
        return {"maxmemory_policy": _text(memory.get("maxmemory_policy", "")),
                "appendonly": "yes" if int(persistence.get("aof_enabled", 0)) else "no"}
