"""Settling a request: free its concurrency slot, replace its token reservation with what it really spent, and
record its usage, in one Redis round trip, before the client sees the end of its answer (a proxy killed a moment
later has lost nothing the client was told about).

When Redis is away at that moment the usage record waits in a bounded buffer and is written as soon as Redis is
back (its slot and reservation expire on their own). Only a proxy killed while Redis is away loses what its buffer
held; a full buffer drops its oldest record, and both are counted in ``atlas_proxy_usage_dropped_total``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError
from starlette.requests import Request

from atlas_core.ratelimit import Limiter, Owner
from atlas_core.schemas import USAGE_MAXLEN, USAGE_STREAM, KeyInfo
from atlas_proxy.stats import ProxyMetrics

log = logging.getLogger("atlas.proxy.usage")
FLUSH_S = 1.0


@dataclass
class Settlement:
    info: KeyInfo
    model: str
    admission: str | None  # the limiter's request id; None when admitted without limits (fail-open)
    reserved: int
    status: int
    prompt: int
    completion: int
    started: float  # epoch seconds, when the request arrived
    route: str = "raw"  # as the dashboard names it (stats.ROUTES)
    aborted: bool = False  # the client went away before the end: its latency is not an answer's
    arrived: float | None = None  # time.perf_counter() at arrival: latencies from a clock NTP cannot step

    def elapsed(self) -> float:
        """Seconds since the request arrived, by the monotonic clock when the arrival was taken by it."""
        return time.perf_counter() - self.arrived if self.arrived is not None else time.time() - self.started


def arrival(request: Request) -> tuple[float, float]:
    """``(perf_counter, epoch)`` of the request's arrival (stamped by the app's outermost middleware; now when
    a request bypassed it)."""
    now = time.perf_counter()
    arrived: float = getattr(request.state, "arrived", now)
    return arrived, time.time() - (now - arrived)


class Meter:
    def __init__(self, redis: Redis, limiter: Limiter, buffer: int, registry: CollectorRegistry,
                 stats: ProxyMetrics | None = None) -> None:
        self._redis = redis
        self._stats = stats
        self._limiter = limiter
        self._waiting: deque[dict[str, Any]] = deque(maxlen=buffer or None)
        self._capacity = buffer
        self._pending: set[asyncio.Task[None]] = set()
        self.tokens = Counter("atlas_proxy_tokens_total", "Tokens metered, by model and kind", ["model", "kind"],
                              registry=registry)
        self.buffered = Counter("atlas_proxy_usage_buffered_total", "Usage records that waited for Redis",
                                registry=registry)
        self.dropped = Counter("atlas_proxy_usage_dropped_total", "Usage records lost (buffer full or disabled)",
                               registry=registry)

    @staticmethod
    def entry(s: Settlement) -> dict[str, Any]:
        return {"ts": s.started, "key_id": s.info.key_id, "user_id": s.info.user_id, "model": s.model,
                "status": s.status, "prompt_tokens": s.prompt, "completion_tokens": s.completion,
                "latency_ms": round(s.elapsed() * 1000, 1)}

    async def settle(self, s: Settlement) -> None:
        """Free the slot, reconcile the reservation, record the usage; never raises (a failure is buffered)."""
        self.tokens.labels(s.model, "prompt").inc(s.prompt)
        self.tokens.labels(s.model, "completion").inc(s.completion)
        if self._stats is not None:
            self._stats.finished(s.model, s.route, s.status, s.elapsed(), aborted=s.aborted)
        owner = Owner.of(s.info)
        entry = self.entry(s)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                if s.admission is not None:
                    self._limiter.finish(pipe, owner, s.admission, s.reserved, s.prompt + s.completion)
                pipe.xadd(USAGE_STREAM, entry, maxlen=USAGE_MAXLEN, approximate=True)  # type: ignore[arg-type]
                await pipe.execute()
        except NoScriptError:  # Redis restarted and lost the finish script; the usage entry went in
            if s.admission is not None:
                try:  # the limiter's own settle loads the script again
                    await self._limiter.settle(owner, s.admission, s.reserved, s.prompt + s.completion)
                except RedisError as exc:
                    log.warning("could not release limits: %s", exc)
        except (RedisError, OSError) as exc:
            log.warning("usage kept in memory until Redis is back: %s", exc)
            self._keep(entry)

    def settle_later(self, s: Settlement) -> None:
        """``settle`` as its own task, for a stream whose client went away (its generator cannot wait)."""
        task = asyncio.create_task(self.settle(s))
        self._pending.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._pending.discard)

    def _keep(self, entry: dict[str, Any]) -> None:
        if not self._capacity or len(self._waiting) == self._capacity:
            self.dropped.inc()
        if self._capacity:
            self._waiting.append(entry)
            self.buffered.inc()

    async def flush(self) -> bool:
        """Write what waited for Redis; True when nothing is left."""
        while self._waiting:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    batch = list(self._waiting)[:500]
                    for entry in batch:
                        pipe.xadd(USAGE_STREAM, entry, maxlen=USAGE_MAXLEN, approximate=True)  # type: ignore[arg-type]
                    await pipe.execute()
            except (RedisError, OSError):
                return False
            for _ in batch:
                self._waiting.popleft()
        return True

    async def run(self) -> None:
        """The background flusher (in the app's lifespan)."""
        while True:
            await asyncio.sleep(FLUSH_S)
            if self._waiting and await self.flush():
                log.info("Redis is back: buffered usage written")

    async def drain(self) -> None:
        """At shutdown: the settlements in flight, then one last flush."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if not await self.flush():
            self.dropped.inc(len(self._waiting))
            log.error("%d usage records lost: Redis was unavailable at shutdown", len(self._waiting))
