"""The router's and the pattern cache's settings, shared by rag-api, the task-workers and ``atlas router``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from atlas_core.settings import AtlasSettings

SIGNALS = ("pattern", "retrieval", "complexity", "lens", "untested")
# The default weights are PLATFORM.md §5's; "untested" (no public tests to verify against) is reported but weighs
# nothing until a calibration says it should.


class RouterSettings(AtlasSettings):
    router_enabled: bool = Field(
        True, description="Choose each solve's route (cache, fast, standard, deep) by Thompson sampling over the "
        "verified outcomes so far; off: every solve spends the default budget (ATLAS_RAG_K ...).")
    router_weights: str = Field(
        "pattern=0.30,retrieval=0.25,complexity=0.20,lens=0.25,untested=0",
        description="Weights of the difficulty signals, name=weight comma-separated (pattern, retrieval, complexity, "
        "lens, untested); a signal a solve lacks (no Lens weights, no project) drops out and the rest are "
        "renormalised.")
    router_bins: str = Field(
        "0.25,0.50,0.75", description="Difficulty thresholds between the bins LOW, MEDIUM, HIGH and EXTREME (three "
        "rising numbers between 0 and 1, comma-separated).")
    router_explore: float = Field(
        0.10, ge=0.0, le=1.0, description="Share of routed solves whose first route is drawn uniformly (the "
        "exploration floor: no route is starved of outcomes).")
    router_escalate: Literal["value", "posterior", "budget"] = Field(
        "value", description="How far a failing solve escalates: value (to the next route while its sampled success "
        "x ATLAS_ROUTER_SUCCESS_VALUE covers its mean cost), posterior (up to the route with the highest sampled "
        "success in its bin) or budget (to deep, while the deadline and the token cap allow).")
    router_success_value: float = Field(
        20_000.0, gt=0, le=10_000_000, description="What one verified success is worth, in compute (tokens): a "
        "failing solve escalates only to a route expected to pay for itself at this price. Raise it for a fast GPU "
        "model, where compute is cheap.")
    router_sandbox_weight: float = Field(
        50.0, ge=0.0, le=100_000, description="Tokens one sandbox second counts as in a route's compute (cost = "
        "tokens + this x sandbox seconds).")
    pattern_cache: bool = Field(
        True, description="Keep each user's verified solutions as patterns, and give the most similar as few-shot "
        "context (and, near-identical, as the cache route's answer).")
    pattern_hit: float = Field(
        0.95, gt=0.0, le=1.0, description="Similarity of the problems above which a verified pattern may answer "
        "outright (the cache route; it is still judged on the public tests).")
    pattern_context_min: float = Field(
        0.5, ge=0.0, le=1.0, description="Similarity below which a pattern is not shown as context.")
    pattern_context_n: int = Field(2, ge=0, le=10, description="Patterns shown as context at most.")
    pattern_short_max: int = Field(100, ge=1, le=10_000, description="Short-term patterns per user (lowest "
                                   "score evicted).")
    pattern_long_max: int = Field(1000, ge=1, le=100_000, description="Long-term patterns per user (lowest "
                                  "score evicted; below 0.01 pruned).")
    pattern_users: int = Field(1000, ge=1, le=1_000_000, description="Users whose patterns are kept; beyond, the "
                               "least recently active user's are deleted.")
    pattern_days: float = Field(180.0, gt=0, le=3650, description="Days a user's patterns are kept after their "
                                "last use.")

    @field_validator("router_weights")
    @classmethod
    def _known_signals(cls, value: str) -> str:
        weights(value)
        return value

    @field_validator("router_bins")
    @classmethod
    def _three_rising(cls, value: str) -> str:
        bins(value)
        return value

    def weights(self) -> dict[str, float]:
        return weights(self.router_weights)

    def bins(self) -> list[float]:
        return bins(self.router_bins)


def weights(text: str) -> dict[str, float]:
    out = dict.fromkeys(SIGNALS, 0.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, number = part.partition("=")
        if name.strip() not in SIGNALS:
            raise ValueError(f"unknown signal {name.strip()!r}: the signals are {', '.join(SIGNALS)}")
        try:
            out[name.strip()] = float(number)
        except ValueError:
            raise ValueError(f"{part!r} is not name=weight") from None
    if any(w < 0 for w in out.values()) or not any(out.values()):
        raise ValueError("weights are >= 0 and at least one is > 0")
    return out


def bins(text: str) -> list[float]:
    try:
        value = [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError("three numbers, comma-separated, e.g. 0.25,0.5,0.75") from None
    if len(value) != 3 or not 0 < value[0] < value[1] < value[2] < 1:
        raise ValueError("three rising thresholds between 0 and 1, e.g. 0.25,0.5,0.75")
    return value
