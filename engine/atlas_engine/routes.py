"""Routes: how much a solve spends, chosen per problem by a router (``atlas_router``) before anything is spent.

A decision is a sequence of steps, cheapest first: the solve runs the first, and while its public tests fail and
the deadline and the token cap allow, escalates to the next. A later step keeps everything the earlier ones
produced (its k counts the samples already made, so escalating from k=1 to k=5 writes four more), and what each
step really spent (tokens, sandbox seconds) is recorded for the router to learn from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from atlas_engine.solve import SolveBudget

RouteName = Literal["cache", "fast", "standard", "deep", "requested"]
ROUTES: tuple[RouteName, ...] = ("cache", "fast", "standard", "deep")  # cheapest first: the escalation order


@dataclass(frozen=True)
class Step:
    route: RouteName
    budget: SolveBudget
    code: str | None = None  # cache: the verified program of the pattern that answers


@dataclass
class StepRun:
    """What one step did: whether the solve passed its public tests after it, and what it cost."""

    route: RouteName
    verified: bool
    tokens: int
    sandbox_s: float
    complete: bool = True  # False: the deadline or the token cap stopped it midway


@dataclass
class RouteDecision:
    """A router's choice for one solve and the evidence behind it (returned in the result, as ``route``)."""

    steps: list[Step]
    requested: bool = False  # the request named k: its budget runs as asked, and no posterior learns from it
    bin: str | None = None
    difficulty: float | None = None  # the router's combined difficulty D, 0 (easy) to 1 (hard)
    signals: dict[str, float] = field(default_factory=dict)
    sampled: dict[str, float] = field(default_factory=dict)  # each route's sampled success probability
    posteriors: dict[str, tuple[float, float]] = field(default_factory=dict)  # (alpha, beta) per route in the bin
    costs: dict[str, float] = field(default_factory=dict)  # each route's mean measured cost in the bin
    explored: bool = False  # chosen by the exploration floor, not by the samples
    context: str | None = None  # few-shot material from verified patterns, carried by the generation prompts
    patterns: list[dict[str, Any]] = field(default_factory=list)  # the retrieved patterns: id, similarity, score
    pattern_used: str | None = None  # the pattern the cache step answered with
    runs: list[StepRun] = field(default_factory=list)  # filled by the engine as the steps run
    memo: Any = None  # the router's own state between deciding and learning (never returned)

    @property
    def route(self) -> RouteName:
        return self.steps[0].route if self.steps else "requested"
