"""The proxy's Prometheus metrics: what each request cost the client in time, by model and route.

Label values are bounded: ``model`` is always a registry entry (an unknown model is refused before any metric is
touched), ``route`` is one of ``ROUTES``, ``reason`` one of ``REJECTIONS``' values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from atlas_core.ratelimit import OVER_WHOLE_LIMIT, REASONS

# The registry's backend names → the route a dashboard shows: a raw model, an embedding model, or model `atlas`
# (the verified pipeline); the task API is "tasks", the project API "projects".
ROUTES = {"llama": "raw", "embed": "embeddings", "rag": "atlas", "tasks": "tasks", "projects": "projects"}
REJECTIONS = {REASONS[1]: "rpm", REASONS[2]: "tpm", REASONS[3]: "concurrency", OVER_WHOLE_LIMIT: "over_limit"}
# From 10 ms (a cached answer on a GPU) to 10 minutes (a deep solve streamed as it goes).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5)


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("atlas_proxy_requests_total", "Admitted requests by model, route and the status "
                                "class the client got (aborted: the client left mid-answer)",
                                ["model", "route", "code"], registry=registry)
        self.ttft = Histogram("atlas_proxy_ttft_seconds", "Streamed requests: arrival to the first generated token",
                              ["model", "route"], registry=registry, buckets=LATENCY_BUCKETS)
        self.itl = Histogram("atlas_proxy_itl_seconds", "Streamed requests: time between generated tokens",
                             ["model", "route"], registry=registry, buckets=ITL_BUCKETS)
        self.e2e = Histogram("atlas_proxy_e2e_seconds", "Admitted requests: arrival to the end of the answer "
                             "(a task event stream: until it opened)", ["model", "route"], registry=registry,
                             buckets=LATENCY_BUCKETS)
        self.rejections = Counter("atlas_proxy_rejections_total", "Requests refused, by reason (rpm, tpm, "
                                  "concurrency, over_limit, streams, auth) and whose limit", ["reason", "scope"],
                                  registry=registry)
        self.upstream_errors = Counter("atlas_proxy_upstream_errors_total", "Backend failures by backend and kind "
                                       "(unavailable, timeout, broke_off, status_5xx)", ["backend", "kind"],
                                       registry=registry)

    def rejected(self, reason: str, scope: str) -> None:
        self.rejections.labels(REJECTIONS.get(reason, reason), scope).inc()

    def finished(self, model: str, route: str, status: int, seconds: float, *, aborted: bool = False) -> None:
        self.requests.labels(model, route, "aborted" if aborted else f"{status // 100}xx").inc()
        if not aborted:  # a cut-short answer's time is not an answer's latency
            self.e2e.labels(model, route).observe(seconds)
