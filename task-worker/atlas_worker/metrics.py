"""The task queue's Prometheus metrics, on the task-worker's ``/metrics``.

Counters and histograms count what this worker did (a task's outcome is counted by the worker that stored it,
once). Gauges are the whole queue's state, read from Redis at scrape time (``refresher``): every worker exports
the same values, so a dashboard takes their max."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from atlas_core.metrics import Refresher
from atlas_core.queue import PRIORITIES, TERMINAL, TaskQueue

SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class QueueMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.retries = Counter("atlas_queue_retries_total", "Task deliveries sent back to the queue for a retry",
                               registry=registry)
        self.dead_lettered = Counter("atlas_queue_dead_lettered_total", "Tasks sent to the dead-letter stream",
                                     registry=registry)
        self.tasks = Counter("atlas_queue_tasks_total", "Tasks finished by a worker, by final status", ["status"],
                             registry=registry)
        self.wait = Histogram("atlas_queue_wait_seconds", "From a task's submission to the start of its first "
                              "delivery", registry=registry, buckets=SECONDS_BUCKETS)
        self.run = Histogram("atlas_queue_run_seconds", "From a task's start to its stored outcome, by final "
                             "status", ["status"], registry=registry, buckets=SECONDS_BUCKETS)
        self.depth = Gauge("atlas_queue_depth", "Tasks queued and not running, by priority", ["priority"],
                           registry=registry)
        self.in_flight = Gauge("atlas_queue_in_flight", "Tasks running (delivered to a worker)", registry=registry)
        self.delayed = Gauge("atlas_queue_delayed", "Tasks waiting out a retry backoff", registry=registry)
        self.dead_letters = Gauge("atlas_queue_dead_letters", "Length of the dead-letter stream", registry=registry)
        self.workers = Gauge("atlas_queue_workers", "Workers alive (seen in the last 10 s)", registry=registry)
        self.heartbeat_age = Gauge("atlas_queue_heartbeat_age_seconds", "Seconds since the least recently seen "
                                   "worker in the workers hash last said it was alive (0 when none)",
                                   registry=registry)
        for status in TERMINAL:  # every series exists from the start: a rate over it reads 0, not absent
            self.tasks.labels(status)
            self.run.labels(status)
        for priority in PRIORITIES:
            self.depth.labels(priority)

    def finished(self, status: str, run_s: float | None, *, dead: bool) -> None:
        """A task's outcome was stored (once: the worker that stored it counts it)."""
        self.tasks.labels(status).inc()
        if run_s is not None:
            self.run.labels(status).observe(max(0.0, run_s))
        if dead:
            self.dead_lettered.inc()

    def refresher(self, queue: TaskQueue) -> Refresher:
        """The coroutine ``GET /metrics`` awaits (``ServiceMetrics.refreshers``): the gauges from ``queue.stats``."""
        async def refresh() -> None:
            numbers = await queue.stats(detail=True)
            for priority in PRIORITIES:
                self.depth.labels(priority).set(max(0, numbers["queued"][priority]))
            self.in_flight.set(numbers["running"])
            self.delayed.set(numbers["retrying"])
            self.dead_letters.set(numbers["dead_letter"])
            self.workers.set(numbers["workers_alive"])
            self.heartbeat_age.set(max((w["seen_s_ago"] for w in numbers["workers"]), default=0.0))

        return refresh
