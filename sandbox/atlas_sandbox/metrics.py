"""The sandbox's own Prometheus series, registered on the service's registry by ``create_app``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from atlas_sandbox.tokens import REJECTION_REASONS


class SandboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # ``language`` is always the canonical name of a language in languages.LANGUAGES (never the request's
        # raw text, which may be an alias or anything else), so its values are a fixed set.
        self.runs = Counter("atlas_sandbox_verdicts_total", "Verdicts given, by endpoint, language and verdict",
                            ["endpoint", "language", "verdict"], registry=registry)
        self.run_time = Histogram("atlas_sandbox_request_seconds", "Time to answer /execute and /judge, by language",
                                  ["endpoint", "language"], registry=registry,
                                  buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
        self.rejections = Counter(
            "atlas_sandbox_token_rejections_total",
            "Requests refused for their capability token, by reason: missing, invalid, expired, reused (already "
            "used) or over_limit (asks for more than the token allows: a language outside its langs)", ["reason"],
            registry=registry)
        for reason in REJECTION_REASONS:  # every reason is exported from the start, at 0
            self.rejections.labels(reason)
