"""What shows the router and the pattern cache working (docs/observability.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter("atlas_router_decisions_total", "Solves by the first route chosen (requested: the "
                                 "request named k) and difficulty bin", ["route", "bin"], registry=registry)
        self.steps = Counter("atlas_router_steps_total", "Route steps run, by outcome on the public tests "
                             "(unverified: no tests)", ["route", "outcome"], registry=registry)
        self.escalations = Counter("atlas_router_escalations_total", "Steps run because a cheaper route failed its "
                                   "public tests", registry=registry)
        self.explored = Counter("atlas_router_explored_total", "First routes drawn by the exploration floor",
                                registry=registry)
        self.compute = Counter("atlas_router_compute_total", "Compute routed solves spent (tokens + sandbox "
                               "seconds x ATLAS_ROUTER_SANDBOX_WEIGHT)", ["route"], registry=registry)
        self.baseline = Counter("atlas_router_baseline_compute_total", "What the same routed solves would have "
                                "spent on the standard route (its mean measured cost in their bins): the difference "
                                "to atlas_router_compute_total is the compute saved", registry=registry)
        self.posterior = Gauge("atlas_router_posterior_mean", "Posterior mean success of each route in each bin, as "
                               "last read", ["bin", "route"], registry=registry)
        self.outcomes = Gauge("atlas_router_posterior_outcomes", "Verified outcomes behind each posterior, as last "
                              "read", ["bin", "route"], registry=registry)
        self.lookups = Counter("atlas_pattern_lookups_total", "Pattern-cache lookups: hit (a pattern close enough to "
                               "answer), context (similar patterns given as examples) or miss", ["result"],
                               registry=registry)
        self.answers = Counter("atlas_pattern_answers_total", "Solves a cached pattern's program answered",
                               registry=registry)
        self.writes = Counter("atlas_pattern_writes_total", "Patterns written or refreshed from verified solves",
                              registry=registry)
        self.errors = Counter("atlas_router_errors_total", "Router or cache steps that failed (Redis or embeddings "
                              "down); the solve went on without them", ["stage"], registry=registry)
