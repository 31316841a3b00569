"""The collector: every ``ATLAS_DASHBOARD_SCRAPE_S`` it reads each service's ``/metrics`` and ``/readyz`` and adds
what moved to the history in Redis (``store``). A small Prometheus of its own, so the page needs none.

Several dashboard replicas share one Redis: a lease (``atlas:dash:leader``) lets one of them collect at a time, and
another takes over when the lease lapses (three intervals, and never less than a slow collection takes). Only
the families the panels read are kept, at most ``ATLAS_DASHBOARD_MAX_SERIES`` samples a collection, and nothing
is written while Redis is past its memory alarm, so the history never crowds out the queue or the limiter."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from atlas_core.health import memory_use
from atlas_dashboard import series, store
from atlas_dashboard.settings import Settings, Target

log = logging.getLogger("atlas.dashboard.collector")
LEADER = f"{store.PREFIX}:leader"
HEALTH = f"{store.PREFIX}:health"
SCRAPE_TIMEOUT_S = 3.0
# A collection waits for two answers of each target (their requests run concurrently): the lease outlives that.
MIN_LEASE_MS = int((2 * SCRAPE_TIMEOUT_S + 4) * 1000)
# Take the lease, or keep it when it is ours: one atomic step, so two replicas never both think they lead.
LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


@dataclass
class Probe:
    """What one target said this time."""

    name: str
    ready: bool
    reason: str
    scrape: series.Scrape | None = None


class Collector:
    def __init__(self, redis: Redis, http: httpx.AsyncClient, settings: Settings, families: frozenset[str],
                 registry: CollectorRegistry) -> None:
        self._redis = redis
        self._http = http
        self._settings = settings
        self._families = families
        self._token = settings.metrics_token.get_secret_value()
        self._me = uuid.uuid4().hex
        self._lease = redis.register_script(LEASE)
        self._previous: dict[str, dict[str, float]] = {}  # target -> its last cumulative samples
        self.scrapes = Counter("atlas_dashboard_scrapes_total", "Scrapes by target and result", ["target", "result"],
                               registry=registry)
        self.tick_seconds = Histogram("atlas_dashboard_collect_seconds", "Time one collection takes (all targets)",
                                      registry=registry, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.skipped = Counter("atlas_dashboard_history_skipped_total", "Collections not written, by reason "
                               "(redis_full: Redis past its memory alarm; lease_lost)", ["reason"], registry=registry)

    async def run(self) -> None:
        """The loop (in the app's lifespan): a failed collection is logged and the next one tries again, whatever
        went wrong (a dashboard that silently stops collecting would draw a flat, false history)."""
        while True:
            started = time.monotonic()
            try:
                await self.collect()
            except (RedisError, OSError) as exc:
                log.warning("collection skipped: %s", exc)
            except Exception:
                log.exception("collection failed")
            await asyncio.sleep(max(0.0, self._settings.dashboard_scrape_s - (time.monotonic() - started)))

    async def collect(self, now: float | None = None) -> bool:
        """One collection, when this replica holds the lease; True when it collected."""
        lease_ms = max(MIN_LEASE_MS, int(self._settings.dashboard_scrape_s * 3000))
        if not int(await self._lease(keys=[LEADER], args=[self._me, lease_ms])):
            self._previous.clear()  # another replica collects: our baselines go stale
            return False
        with self.tick_seconds.time():
            probes = await asyncio.gather(*(self._probe(t) for t in self._settings.targets()))
            increases, gauges = [], []
            for probe in probes:
                if probe.scrape is None:
                    continue
                increases.append(series.increase(probe.scrape.cumulative, self._previous.get(probe.name)))
                self._previous[probe.name] = probe.scrape.cumulative
                gauges.append(probe.scrape.gauges)
            grown, reported = series.combine(increases, gauges)
            grown, reported = _capped(grown, reported, self._settings.dashboard_max_series)
            when = time.time() if now is None else now
            if await self._redis_full():
                self.skipped.labels("redis_full").inc()
            elif not await store.add(self._redis, grown, reported, when, (LEADER, self._me)):
                self.skipped.labels("lease_lost").inc()
            health = {"checked": when, "services": [
                {"name": p.name, "ready": p.ready, "reason": p.reason} for p in probes]}
            await self._redis.set(HEALTH, json.dumps(health), ex=int(self._settings.dashboard_scrape_s * 3) + 60)
        return True

    async def _redis_full(self) -> bool:
        used, limit = await memory_use(self._redis)
        return limit > 0 and used / limit >= self._settings.redis_memory_alarm

    async def _probe(self, target: Target) -> Probe:
        """Readiness and metrics apart: a service that is ready but whose /metrics fails is shown ready, with
        the reason its numbers are missing."""
        headers = {"Authorization": f"Bearer {self._token}"} if target.kind == "service" else {}
        ready, reason = await self._ready(target, headers)
        if target.kind != "service":
            self.scrapes.labels(target.name, "ok" if reason != UNREACHABLE else "failed").inc()
            return Probe(target.name, ready, reason)
        try:
            answer = await self._http.get(target.metrics_url, headers=headers, timeout=SCRAPE_TIMEOUT_S)
            answer.raise_for_status()
            scrape = series.parse(answer.text, self._families, self._settings.dashboard_max_series)
        except Exception as exc:  # any failure of one target is that target's, never the collection's
            self.scrapes.labels(target.name, "failed").inc()
            return Probe(target.name, ready, f"{reason}; no metrics ({type(exc).__name__})")
        self.scrapes.labels(target.name, "ok").inc()
        return Probe(target.name, ready, reason, scrape)

    async def _ready(self, target: Target, headers: dict[str, str]) -> tuple[bool, str]:
        try:
            answer = await self._http.get(target.ready_url, headers=headers, timeout=SCRAPE_TIMEOUT_S)
        except Exception as exc:
            return False, f"{UNREACHABLE} ({type(exc).__name__})"
        return answer.status_code == 200, _reason(answer)


UNREACHABLE = "unreachable"


def _capped(grown: dict[str, float], reported: dict[str, float], limit: int
            ) -> tuple[dict[str, float], dict[str, float]]:
    """At most ``limit`` fields a collection, all processes together (whole keys, in a stable order)."""
    if len(grown) + len(reported) <= limit:
        return grown, reported
    log.warning("the collection has %d samples, more than ATLAS_DASHBOARD_MAX_SERIES=%d: the rest are dropped",
                len(grown) + len(reported), limit)
    kept = dict(sorted(reported.items())[:limit])
    return dict(sorted(grown.items())[: limit - len(kept)]), kept


def _reason(answer: httpx.Response) -> str:
    """``ok``, or what a service's ``/readyz`` says is failing (its checks that are not ok)."""
    if answer.status_code == 200:
        return "ok"
    try:
        body = answer.json()
    except ValueError:
        body = None
    checks = body.get("checks") if isinstance(body, dict) else None
    failing = [f"{name}: {result}" for name, result in checks.items() if result != "ok"] \
        if isinstance(checks, dict) else []
    return "; ".join(failing)[:300] or f"answered {answer.status_code}"


async def health(redis: Redis) -> dict[str, Any] | None:
    raw = await redis.get(HEALTH)
    return json.loads(raw) if raw else None
