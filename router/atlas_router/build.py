"""The router as rag-api and the task-workers run it, built from settings."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from atlas_engine import EngineConfig
from atlas_router.bandit import Posteriors
from atlas_router.metrics import RouterMetrics
from atlas_router.patterns import PatternCache
from atlas_router.router import ConfidenceRouter, ProblemEmbedder
from atlas_router.settings import RouterSettings


def pattern_cache(redis: Redis, settings: RouterSettings) -> PatternCache:
    return PatternCache(redis, short_max=settings.pattern_short_max, long_max=settings.pattern_long_max,
                        users=settings.pattern_users, days=settings.pattern_days)


def build_router(redis: Redis, embedder: ProblemEmbedder | None, settings: RouterSettings, config: EngineConfig,
                 registry: CollectorRegistry) -> ConfidenceRouter:
    """``embedder``: the problems' embeddings for the pattern cache (the embedding sidecar)."""
    return ConfidenceRouter(Posteriors(redis), pattern_cache(redis, settings), embedder, settings, config,
                            RouterMetrics(registry))
