"""The durable task queue on Redis Streams, shared by rag-api (submit, read, cancel, stats) and the task-workers
(consume, heartbeat, reclaim, retry, finish).

Layout (one Redis; every multi-key step is a Lua script, so it is atomic):

- ``atlas:tasks:p0|p1|p2``: one stream per priority, consumer group ``task-workers``. An entry is only a
  task id; it stays in the stream while the task is queued or running and is acknowledged *and deleted*
  once the result is stored, so the streams' length is the work in the system (the bound counts it).
- ``atlas:task:{id}``: the task's record (a hash); ``...:attempts`` (a list of JSON attempts and
  interruptions); ``...:events`` (a stream the SSE endpoint follows). All three expire ``ttl_s`` after the
  last change.
- ``atlas:tasks:delayed``: tasks waiting out a retry backoff (a sorted set by due time, ``priority|id``).
- ``atlas:tasks:dead``: the dead-letter stream, with the reason.
- ``atlas:tasks:owner:{user}``: the owner's task ids by submission time (for listing).
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

Priority = Literal["p0", "p1", "p2"]
PRIORITIES: tuple[Priority, ...] = ("p0", "p1", "p2")
GROUP = "task-workers"
DELAYED = "atlas:tasks:delayed"
DEAD = "atlas:tasks:dead"
WORKERS = "atlas:tasks:workers"  # hash: worker name -> JSON {seen, running, served, concurrency}
WORKER_GONE_S = 3600  # a worker silent this long is dropped from the hash (one silent 10 s is listed as stale)
DEAD_MAXLEN = 10_000
EVENTS_MAXLEN = 2_000  # per task: enough for every progress line of a long task, bounded all the same
METRICS_TTL_S = 40 * 86400
TERMINAL = ("succeeded", "failed", "cancelled", "dead")
StopReason = Literal["SUCCESS", "MAX_ATTEMPTS", "DEADLINE", "CANCELLED", "UNRECOVERABLE"]
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


def metrics_key(when: float | None = None) -> str:
    day = datetime.fromtimestamp(when if when is not None else time.time(), UTC).strftime("%Y-%m-%d")
    return f"atlas:tasks:metrics:{day}"


class QueueFull(Exception):
    def __init__(self, queued: int, limit: int) -> None:
        super().__init__(f"the task queue is full ({queued} tasks waiting or running, limit {limit})")
        self.queued = queued
        self.limit = limit


# KEYS: stream, record, events, metrics, owner index, p0, p1, p2, delayed
# ARGV: task id, limit, ttl, now, owner-index cutoff, event data, then the record's field/value pairs.
# Returns the work in the queue with this task, 0 if the task exists already, -1 - n when the queue is full.
SUBMIT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end  -- a re-sent submission (the reply was lost)
local n = redis.call('XLEN', KEYS[6]) + redis.call('XLEN', KEYS[7]) + redis.call('XLEN', KEYS[8])
    + redis.call('ZCARD', KEYS[9])
if n >= tonumber(ARGV[2]) then return -1 - n end
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], unpack(ARGV, 7))
local entry = redis.call('XADD', KEYS[1], '*', 'id', ARGV[1])
redis.call('HSET', KEYS[2], 'entry', entry)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'type', 'queued', 'data', ARGV[6])
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('HINCRBY', KEYS[4], 'submitted', 1)
redis.call('EXPIRE', KEYS[4], 3456000)
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[5])
redis.call('EXPIRE', KEYS[5], ttl)
return n + 1
"""

# Prepended to the scripts that ask whether a task has its outcome already.
_FINISHED = """
local function finished(status)
    return status == 'succeeded' or status == 'failed' or status == 'cancelled' or status == 'dead'
end
"""

# A worker takes a delivered entry. KEYS: record, events, attempts. ARGV: consumer, now, entry, ttl.
# Returns {state, deliveries, record, attempts}; state is run, skip (finished)
# or gone (expired).
BEGIN = _FINISHED + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'gone', 0} end
if finished(status) then
    return {'skip', 0}
end
local previous = redis.call('HGET', KEYS[1], 'worker') or ''
local ttl = tonumber(ARGV[4])
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
if status == 'running' and previous == ARGV[1] and redis.call('HGET', KEYS[1], 'entry') == ARGV[3] then
    -- the same call again (its reply was lost): nothing new has happened
    return {'run', tonumber(redis.call('HGET', KEYS[1], 'deliveries')), redis.call('HGETALL', KEYS[1]),
            redis.call('LRANGE', KEYS[3], 0, -1)}
end
local deliveries = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[1], 'entry', ARGV[3], 'heartbeat', ARGV[2])
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[2])
if status == 'running' then
    local note = cjson.encode({kind='interruption', worker=previous, reclaimed_by=ARGV[1], at=tonumber(ARGV[2]),
        message='worker ' .. previous .. ' stopped while running this task; ' .. ARGV[1] .. ' took it over'})
    redis.call('RPUSH', KEYS[3], note)
    redis.call('EXPIRE', KEYS[3], ttl)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'type', 'interrupted', 'data', note)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'type', 'started',
    'data', cjson.encode({worker=ARGV[1], delivery=deliveries}))
return {'run', deliveries, redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[3], 0, -1)}
"""

# Keep an entry: reset its idle time, and the task's TTLs (a task may run longer than them), if this consumer
# still holds it. KEYS: stream, record, events, attempts. ARGV: group, consumer, entry, now, ttl.
# Returns {held (0/1), cancel flag}.
HEARTBEAT = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not (pending[1] and pending[1][2] == ARGV[2]) or redis.call('EXISTS', KEYS[2]) == 0 then return {0, '0'} end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
redis.call('HSET', KEYS[2], 'heartbeat', ARGV[4])
for i = 2, 4 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[5])) end
return {1, redis.call('HGET', KEYS[2], 'cancel') or '0'}
"""

# Give a running task back at shutdown, if this consumer still holds it and runs it: the delivery does not
# count, and the entry looks long idle, so the next reclaim by any worker takes it at once.
# KEYS: stream, record, events. ARGV: group, consumer, entry. Returns 1 if handed back.
HAND_BACK = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not (pending[1] and pending[1][2] == ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[2], 'status') ~= 'running' or redis.call('HGET', KEYS[2], 'worker') ~= ARGV[2] then
    return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', 1000000000, 'JUSTID')
redis.call('HINCRBY', KEYS[2], 'deliveries', -1)
redis.call('HSET', KEYS[2], 'status', 'queued', 'worker', '')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'type', 'handed_back', 'data', cjson.encode({worker=ARGV[2]}))
return 1
"""

# Record an attempt once (a re-sent call must not store it twice). KEYS: attempts. ARGV: attempt JSON, n, ttl.
ADD_ATTEMPT = """
for _, x in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    local a = cjson.decode(x)
    if a.kind == 'attempt' and a.n == tonumber(ARGV[2]) then return 0 end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

# Store the outcome once. KEYS: stream, record, events, attempts, metrics, dead.
# ARGV: group, entry, ttl, status, event data, dead-letter data ('' = none), metric increments (JSON),
# then the record's field/value pairs. Returns 1 when written, 0 when the task was already finished.
FINISH = _FINISHED + """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local status = redis.call('HGET', KEYS[2], 'status')
if (not status) or finished(status) then
    return 0
end
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'status', ARGV[4], unpack(ARGV, 8))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'type', 'done', 'data', ARGV[5])
if ARGV[6] ~= '' then
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', 10000, '*', 'data', ARGV[6])
end
for _, key in ipairs({KEYS[2], KEYS[3], KEYS[4]}) do redis.call('EXPIRE', key, ttl) end
for field, by in pairs(cjson.decode(ARGV[7])) do redis.call('HINCRBY', KEYS[5], field, by) end
redis.call('EXPIRE', KEYS[5], 3456000)
return 1
"""

# Back off and try again later, if this consumer runs the task (otherwise the entry is left alone: pending, it
# is reclaimed; or finished, it is dropped). KEYS: stream, record, events, delayed.
# ARGV: group, entry, due, member, event, counted (1: this delivery counts toward the limit), last error, consumer.
RETRY = _FINISHED + """
local status = redis.call('HGET', KEYS[2], 'status')
if status ~= 'running' or redis.call('HGET', KEYS[2], 'worker') ~= ARGV[8] then
    if (not status) or finished(status) then
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[1], ARGV[2])
    end
    return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[6] ~= '1' then
    redis.call('HINCRBY', KEYS[2], 'deliveries', -1)
    redis.call('HINCRBY', KEYS[2], 'outages', 1)
end
redis.call('HSET', KEYS[2], 'status', 'queued', 'entry', '', 'worker', '', 'last_error', ARGV[7])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'type', 'retry', 'data', ARGV[5])
return 1
"""

# Read new entries, streams in the given order, in one round trip. KEYS: the streams in reading order.
# ARGV: group, consumer, count. Returns {1, {{stream, id, fields}...}}, or {0, {last-delivered id per stream}}
# when every stream is empty (the ids to block on without missing an entry added in between).
READ = """
local count = tonumber(ARGV[3])
local out = {}
for _, key in ipairs(KEYS) do
    if count <= 0 then break end
    local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', count, 'STREAMS', key, '>')
    if got then
        for _, e in ipairs(got[1][2]) do
            table.insert(out, {key, e[1], e[2]})
            count = count - 1
        end
    end
end
if #out > 0 then return {1, out} end
local ids = {}
for _, key in ipairs(KEYS) do
    local last = '0'
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
        local name, id
        for j = 1, #g, 2 do
            if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then id = g[j + 1] end
        end
        if name == ARGV[1] then last = id end
    end
    table.insert(ids, last)
end
return {0, ids}
"""

# Move due retries back into their streams. KEYS: delayed. ARGV: now, how many.
PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
    local sep = string.find(member, '|', 1, true)
    local priority, id = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
    redis.call('ZREM', KEYS[1], member)
    local record = 'atlas:task:' .. id
    if redis.call('HGET', record, 'status') == 'queued' then
        local entry = redis.call('XADD', 'atlas:tasks:' .. priority, '*', 'id', id)
        redis.call('HSET', record, 'entry', entry)
    end
end
return #due
"""

# Cancel. KEYS: record, events, delayed, metrics. ARGV: now, ttl. Returns the status after the call.
CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status == 'running' then
    if redis.call('HGET', KEYS[1], 'cancel') ~= '1' then
        redis.call('HSET', KEYS[1], 'cancel', '1')
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'type', 'cancelling', 'data', '{}')
    end
    return 'cancelling'
end
if status ~= 'queued' then return status end
local priority = redis.call('HGET', KEYS[1], 'priority')
local id = redis.call('HGET', KEYS[1], 'id')
local entry = redis.call('HGET', KEYS[1], 'entry')
if entry and entry ~= '' then redis.call('XDEL', 'atlas:tasks:' .. priority, entry) end
redis.call('ZREM', KEYS[3], priority .. '|' .. id)
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'stop_reason', 'CANCELLED', 'finished_at', ARGV[1], 'cancel', '1')
local data = cjson.encode({status='cancelled', stop_reason='CANCELLED'})
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'type', 'done', 'data', data)
redis.call('HINCRBY', KEYS[4], 'cancelled', 1)
return 'cancelled'
"""


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
    state: Literal["run", "skip", "gone"]
    deliveries: int
    record: dict[str, str]
    history: list[dict[str, Any]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


class TaskQueue:
    """Every queue operation; ``redis`` is a client with ``decode_responses=False`` (the services' default)."""

    def __init__(self, redis: Redis, *, ttl_s: int = 7 * 86400, max_queued: int = 10_000) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.max_queued = max_queued
        self._scripts = {name: redis.register_script(body) for name, body in (
            ("submit", SUBMIT), ("begin", BEGIN), ("heartbeat", HEARTBEAT), ("finish", FINISH),
            ("retry", RETRY), ("promote", PROMOTE), ("cancel", CANCEL), ("read", READ), ("hand_back", HAND_BACK),
            ("add_attempt", ADD_ATTEMPT))}
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
                     max_attempts: int, key_id: str = "") -> str:
        """Queue a task; QueueFull when the bound is reached (nothing is written then)."""
        task_id = uuid.uuid4().hex
        now = time.time()
        fields = {"id": task_id, "owner": owner, "key_id": key_id, "priority": priority, "status": "queued",
                  "spec": json.dumps(spec), "submitted_at": repr(now), "deadline_at": repr(now + deadline_s),
                  "max_attempts": str(max_attempts), "deliveries": "0", "cancel": "0"}
        keys = [stream_key(priority), record_key(task_id), events_key(task_id), metrics_key(now),
                owner_key(owner), *(stream_key(p) for p in PRIORITIES), DELAYED]
        event = json.dumps({"priority": priority})
        args: list[str | int] = [task_id, self.max_queued, self.ttl_s, repr(now), repr(now - self.ttl_s), event,
                *(x for pair in fields.items() for x in pair)]
        queued = int(await self._scripts["submit"](keys=keys, args=args))  # 0: a re-sent call found it queued
        if queued < 0:
            raise QueueFull(-queued - 1, self.max_queued)
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

    async def cancel(self, task_id: str) -> str:
        """The status after the request: cancelled (it had not started), cancelling (the worker stops it within
        about a second), or the finished status it already had; '' when there is no such task."""
        now = time.time()
        keys = [record_key(task_id), events_key(task_id), DELAYED, metrics_key(now)]
        return _text(await self._scripts["cancel"](keys=keys, args=[repr(now), self.ttl_s]))

    async def stats(self) -> dict[str, Any]:
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
        return {
            "queued": {p: int(n) - running[p] for p, n in zip(PRIORITIES, lengths, strict=True)},
            "running": sum(running.values()),
            "retrying": int(answers[6]),
            "dead_letter": int(answers[7]),
            "limit": self.max_queued,
            "today": {k: int(v) for k, v in _decode(answers[8] or {}).items()},
            "workers": workers,
        }

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
        tid = delivery.task_id
        answer = await self._scripts["begin"](keys=[record_key(tid), events_key(tid), attempts_key(tid)],
                                              args=[consumer, repr(time.time()), delivery.entry, self.ttl_s])
        flat = answer[2] if len(answer) > 2 else []
        record = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        history = [json.loads(x) for x in (answer[3] if len(answer) > 3 else [])]
        return Begun(_text(answer[0]), int(answer[1]), record, history)  # type: ignore[arg-type]

    async def ack(self, delivery: Delivery) -> None:
        """Drop an entry whose task needs nothing more (finished or cancelled before it started, or expired)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(stream_key(delivery.priority), GROUP, delivery.entry)
            pipe.xdel(stream_key(delivery.priority), delivery.entry)
            await pipe.execute()

    async def heartbeat(self, delivery: Delivery, consumer: str) -> tuple[bool, bool]:
        """(still held by this consumer, cancellation requested)."""
        tid = delivery.task_id
        held, cancel = await self._scripts["heartbeat"](
            keys=[stream_key(delivery.priority), record_key(tid), events_key(tid), attempts_key(tid)],
            args=[GROUP, consumer, delivery.entry, repr(time.time()), self.ttl_s])
        return bool(int(held)), _text(cancel) == "1"

    async def event(self, task_id: str, kind: str, data: dict[str, Any]) -> None:
        await self.redis.xadd(events_key(task_id), {"type": kind, "data": json.dumps(data)},
                              maxlen=EVENTS_MAXLEN, approximate=True)

    async def add_attempt(self, task_id: str, attempt: dict[str, Any]) -> None:
        await self._scripts["add_attempt"](keys=[attempts_key(task_id)],
                                           args=[json.dumps(attempt), int(attempt["n"]), self.ttl_s])

    async def finish(self, delivery: Delivery, status: str, fields: dict[str, str], event: dict[str, Any],
                     counts: dict[str, int], dead_letter: dict[str, Any] | None = None) -> bool:
        """Acknowledge the entry and store the outcome, once: False when the task had finished already."""
        tid = delivery.task_id
        fields = {"finished_at": repr(time.time()), **fields}
        keys = [stream_key(delivery.priority), record_key(tid), events_key(tid), attempts_key(tid), metrics_key(),
                DEAD]
        args: list[str | int] = [GROUP, delivery.entry, self.ttl_s, status, json.dumps(event),
                json.dumps(dead_letter) if dead_letter else "", json.dumps(counts),
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
        """Give a running task back at shutdown (see HAND_BACK); False when it is not this consumer's any more."""
        tid = delivery.task_id
        return bool(await self._scripts["hand_back"](keys=[stream_key(delivery.priority), record_key(tid),
                                                           events_key(tid)], args=[GROUP, consumer, delivery.entry]))

    async def redis_policy(self) -> dict[str, str]:
        """The settings that make Redis safe for a queue: noeviction, and persistence (AOF)."""
        policy = await self.redis.config_get("maxmemory-policy")
        aof = await self.redis.config_get("appendonly")
        return {"maxmemory_policy": _text(next(iter(policy.values()), "")),
                "appendonly": _text(next(iter(aof.values()), ""))}
