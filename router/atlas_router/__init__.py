"""ATLAS's confidence router and pattern cache (docs/rag.md, "Routes, the bandit and the pattern cache"): the
engine's Router plug point, choosing each solve's route by Thompson sampling over verified outcomes kept in Redis,
and each user's verified solutions as few-shot context."""

from atlas_engine import ROUTES
from atlas_router.bandit import PRIOR_COSTS, Arm, Posteriors, choose
from atlas_router.build import build_router, pattern_cache
from atlas_router.patterns import HALF_LIFE_DAYS, Match, Pattern, PatternCache, kind_of, pattern_id
from atlas_router.router import ConfidenceRouter, ProblemEmbedder, context_of
from atlas_router.settings import SIGNALS, RouterSettings
from atlas_router.signals import BINS, bin_of, complexity, difficulty

__all__ = [
    "BINS",
    "HALF_LIFE_DAYS",
    "PRIOR_COSTS",
    "ROUTES",
    "SIGNALS",
    "Arm",
    "ConfidenceRouter",
    "Match",
    "Pattern",
    "PatternCache",
    "Posteriors",
    "ProblemEmbedder",
    "RouterSettings",
    "bin_of",
    "build_router",
    "choose",
    "complexity",
    "context_of",
    "difficulty",
    "kind_of",
    "pattern_cache",
    "pattern_id",
]
