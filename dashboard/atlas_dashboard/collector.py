"""The collector: every ``ATLAS_DASHBOARD_SCRAPE_S`` it reads each service's ``/metrics`` and ``/readyz`` and adds
what moved to the history in Redis (``store``). A small Prometheus of its own, so the page needs none.

Several dashboard replicas share one Redis: a lease (``atlas:dash:leader``) lets one of them collect at a time, and
another takes over within three intervals when it stops. Only the families the panels read are kept, and at most
``ATLAS_DASHBOARD_MAX_SERIES`` samples a process, so the history's size has a bound whatever a service exports."""

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

from atlas_dashboard import series, store
from atlas_dashboard.settings import Settings, Target

log = logging.getLogger("atlas.dashboard.collector")
LEADER = f"{store.PREFIX}:leader"
HEALTH = f"{store.PREFIX}:health"
SCRAPE_TIMEOUT_S = 3.0
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

    async def run(self) -> None:
        """The loop (in the app's lifespan): a failed collection is logged and the next one tries again."""
        while True:
            started = time.monotonic()
            try:
                await self.collect()
            except (RedisError, OSError) as exc:
                log.warning("collection skipped: %s", exc)
            await asyncio.sleep(max(0.0, self._settings.dashboard_scrape_s - (time.monotonic() - started)))

    async def collect(self, now: float | None = None) -> bool:
        """One collection, when this replica holds the lease; True when it collected."""
        lease_ms = int(self._settings.dashboard_scrape_s * 3000)
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
            when = time.time() if now is None else now
            await store.add(self._redis, grown, reported, when)
            health = {"checked": when, "services": [
                {"name": p.name, "ready": p.ready, "reason": p.reason} for p in probes]}
            await self._redis.set(HEALTH, json.dumps(health), ex=int(self._settings.dashboard_scrape_s * 3) + 60)
        return True

    async def _probe(self, target: Target) -> Probe:
        headers = {"Authorization": f"Bearer {self._token}"} if target.kind == "service" else {}
        try:
            ready = await self._http.get(target.ready_url, headers=headers, timeout=SCRAPE_TIMEOUT_S)
            reason = _reason(ready)
            scrape = None
            if target.kind == "service":
                answer = await self._http.get(target.metrics_url, headers=headers, timeout=SCRAPE_TIMEOUT_S)
                answer.raise_for_status()
                scrape = series.parse(answer.text, self._families, self._settings.dashboard_max_series)
        except (httpx.HTTPError, ValueError) as exc:
            self.scrapes.labels(target.name, "failed").inc()
            return Probe(target.name, False, f"unreachable ({type(exc).__name__})")
        self.scrapes.labels(target.name, "ok").inc()
        return Probe(target.name, ready.status_code == 200, reason, scrape)


def _reason(answer: httpx.Response) -> str:
    """``ok``, or what a service's ``/readyz`` says is failing (its checks that are not ok)."""
    if answer.status_code == 200:
        return "ok"
    try:
        checks: dict[str, Any] = answer.json().get("checks", {})
    except ValueError:
        checks = {}
    failing = [f"{name}: {result}" for name, result in checks.items() if result != "ok"]
    return "; ".join(failing)[:300] or f"answered {answer.status_code}"


async def health(redis: Redis) -> dict[str, Any] | None:
    raw = await redis.get(HEALTH)
    return json.loads(raw) if raw else None
