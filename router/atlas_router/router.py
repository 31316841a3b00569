"""The confidence router: the engine's ``Router`` plug point (``atlas_engine.routes``).

Before a solve spends anything it gathers the difficulty signals (``signals``), retrieves the owner's most similar
verified patterns (``patterns``), reads the posteriors of the problem's bin (``bandit``) and chooses the first
route by Thompson sampling, with the routes above it, up to the ceiling, as escalations. After the solve, every
step that ran on public tests updates its (bin, route) posterior with whether the solve passed after it and what
it really spent; a solve that passed becomes (or refreshes) its owner's pattern; the patterns it was shown count
a use. Redis or the embedding server down: the solve runs with the budget it would have had, and says nothing."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
from redis.exceptions import RedisError

from atlas_engine import EngineConfig, RouteDecision, RouteName, Solve, SolveBudget, SolveResult, Step
from atlas_router.bandit import Posteriors, choose
from atlas_router.metrics import RouterMetrics
from atlas_router.patterns import Match, PatternCache, describe, kind_of
from atlas_router.settings import RouterSettings
from atlas_router.signals import bin_of, complexity, difficulty

log = logging.getLogger("atlas.router")
MAX_CONTEXT_CHARS = 4000
MAX_EMBED_CHARS = 3000


class ProblemEmbedder(Protocol):
    async def embed(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class Memo:
    matches: list[Match]
    vector: np.ndarray | None
    baseline: float  # the standard route's mean cost in the bin, when the decision was made


def context_of(matches: list[Match]) -> str | None:
    if not matches:
        return None
    parts = ["Verified solutions to similar problems solved before (for reference; solve the new problem as it "
             "is stated):"]
    for m in matches:
        p = m.pattern
        parts.append(f"### A similar problem (similarity {m.similarity:.2f})\n{p.problem[:800]}\n"
                     f"Approach: {p.description}\n```{p.language}\n{p.code[:2000]}\n```")
    return "\n\n".join(parts)[:MAX_CONTEXT_CHARS]


class ConfidenceRouter:
    def __init__(self, posteriors: Posteriors, patterns: PatternCache | None, embedder: ProblemEmbedder | None,
                 settings: RouterSettings, config: EngineConfig, metrics: RouterMetrics,
                 rng: random.Random | None = None) -> None:
        self.posteriors = posteriors
        self.patterns = patterns if settings.pattern_cache else None
        self.embedder = embedder
        self.settings = settings
        self.config = config
        self.metrics = metrics
        self.rng = rng or random.Random()  # noqa: S311 - exploration, not secrecy

    async def decide(self, solve: Solve) -> RouteDecision | None:
        try:
            return await self._decide(solve)
        except RedisError as exc:
            self.metrics.errors.labels("decide").inc()
            log.warning("router: no decision (%s); the solve keeps its budget", type(exc).__name__)
            return None

    async def _decide(self, solve: Solve) -> RouteDecision:
        problem, s = solve.problem, self.settings
        signals = {"complexity": complexity(problem.text), "untested": 0.0 if problem.tests else 1.0}
        if solve.retrieved is not None:  # only a solve that names a project has this signal
            signals["retrieval"] = round(1.0 - solve.retrieved.confidence(), 4)
        if solve.difficulty is not None:
            signals["lens"] = round(solve.difficulty, 4)
        matches, vector = await self._similar(solve)
        if vector is not None:
            signals["pattern"] = round(1.0 - (matches[0].similarity if matches else 0.0), 4)
        d = difficulty(signals, s.weights())
        bin_ = bin_of(d, s.bins())
        shown = [m for m in matches if m.similarity >= s.pattern_context_min][: s.pattern_context_n]
        hit = matches[0] if matches and matches[0].similarity >= s.pattern_hit and problem.tests else None
        if vector is not None:
            self.metrics.lookups.labels("hit" if hit else "context" if shown else "miss").inc()
        used = shown + ([hit] if hit is not None and hit not in shown else [])
        arms = await self.posteriors.read(bin_)
        for r, arm in arms.items():
            self.metrics.posterior.labels(bin_, r).set(arm.mean)
            self.metrics.outcomes.labels(bin_, r).set(arm.n)
        memo = Memo(used, vector, arms["standard"].cost("standard"))
        decision = RouteDecision(steps=[Step("requested", solve.budget)], requested=True, bin=bin_, difficulty=d,
                                 signals=signals, context=context_of(shown), patterns=[m.brief() for m in used],
                                 memo=memo, posteriors={r: (a.alpha, a.beta) for r, a in arms.items()},
                                 costs={r: round(a.cost(r), 1) for r, a in arms.items()})
        if (solve.asked is not None and solve.asked.k is not None) or not s.router_enabled:
            self.metrics.decisions.labels("requested", bin_).inc()
            return decision
        eligible: list[RouteName] = [*(["cache"] if hit else []), "fast", "standard", "deep"]  # type: ignore[list-item]
        choice = choose(arms, eligible, s.router_explore, self.rng,
                        s.router_success_value if s.router_escalate == "value" else None)
        start = eligible.index(choice.route)
        end = eligible.index(choice.ceiling) if s.router_escalate != "budget" else len(eligible) - 1
        decision.steps = [Step(r, self.budget(r, solve), hit.pattern.code if r == "cache" and hit else None)
                          for r in eligible[start:max(start, end) + 1]]
        decision.requested, decision.explored = False, choice.explored
        decision.sampled = {r: round(v, 4) for r, v in choice.sampled.items()}
        self.metrics.decisions.labels(choice.route, bin_).inc()
        self.metrics.explored.inc(choice.explored)
        return decision

    async def _similar(self, solve: Solve) -> tuple[list[Match], np.ndarray | None]:
        """The owner's most similar patterns, and the problem's embedding (None: no cache, no owner, or the
        embedding server is down)."""
        if self.patterns is None or self.embedder is None or solve.owner is None or not solve.budget.patterns:
            return [], None
        try:
            vector = (await self.embedder.embed([solve.problem.text[:MAX_EMBED_CHARS] or " "]))[0]
        except Exception as exc:  # any embedding failure (server down, bad answer) means: no similarity signal
            self.metrics.errors.labels("embed").inc()
            log.warning("router: no problem embedding (%s)", type(exc).__name__)
            return [], None
        limit = max(self.settings.pattern_context_n, 1)
        return await self.patterns.lookup(solve.owner, vector, solve.problem.language, limit), vector

    def budget(self, route: RouteName, solve: Solve) -> SolveBudget:
        """A route's budget, on top of the solve's; what the request named (repair rounds, self-tests, plans,
        tokens per candidate, deadline) holds on every route that generates (the cache route generates nothing)."""
        base, c = solve.budget, self.config
        by_route: dict[str, SolveBudget] = {
            "cache": replace(base, k=0, repair_rounds=0, self_tests=False, plans=0),
            "fast": replace(base, k=1, repair_rounds=1, self_tests=False, plans=0),
            "standard": replace(base, k=c.k),
            "deep": replace(base, k=c.deep_k, plans=c.deep_plans, self_tests=True,
                            repair_rounds=max(base.repair_rounds, c.deep_repairs)),
        }
        b, asked = by_route[route], solve.asked
        if asked is not None and route != "cache":
            named = {f: getattr(base, f) for f in ("repair_rounds", "self_tests", "plans")
                     if getattr(asked, f) is not None}
            b = replace(b, **named)
        return replace(b, plans=min(b.plans, max(0, b.k - 1)))

    async def learn(self, solve: Solve, result: SolveResult) -> None:
        d = solve.decision
        if d is None:
            return
        memo: Memo = d.memo
        tested = bool(solve.problem.tests)
        w = self.settings.router_sandbox_weight
        costs = [run.tokens + w * run.sandbox_s for run in d.runs]
        for n, (run, cost) in enumerate(zip(d.runs, costs, strict=True)):
            self.metrics.compute.labels(run.route).inc(cost)
            self.metrics.steps.labels(run.route, "unverified" if not tested else
                                      "passed" if run.verified else "failed").inc()
            self.metrics.escalations.inc(n > 0)
        if not d.requested:
            self.metrics.baseline.inc(memo.baseline)
        if result.route is not None and result.route.cache_hit:
            self.metrics.answers.inc()
        if not solve.budget.learn:
            return
        try:
            if tested and not d.requested:
                for run, cost in zip(d.runs, costs, strict=True):
                    await self.posteriors.update(d.bin or "MEDIUM", run.route, run.verified, cost)
            await self._remember(solve, result, memo, tested)
        except RedisError as exc:
            self.metrics.errors.labels("learn").inc()
            log.warning("router: outcome not recorded (%s)", type(exc).__name__)

    async def _remember(self, solve: Solve, result: SolveResult, memo: Memo, tested: bool) -> None:
        if self.patterns is None or solve.owner is None:
            return
        if memo.matches:
            await self.patterns.touch(solve.owner, memo.matches, result.verified if tested else None)
        winner = next((c for c in solve.candidates if c.index == result.winner), None)
        if not result.verified or winner is None or winner.code is None or memo.vector is None \
                or winner.origin == "pattern":
            return  # only a verified success is kept, and a cached answer is already a pattern
        plan = winner.extra.get("plan")
        plan_text = solve.plans[plan] if isinstance(plan, int) and plan < len(solve.plans) else None
        await self.patterns.write(solve.owner, memo.vector, language=solve.problem.language,
                                  problem=solve.problem.text, code=winner.code,
                                  description=describe(solve.problem.text, plan_text),
                                  kind=kind_of(winner.origin, plan_text is not None, winner.code,
                                               solve.problem.language))
        self.metrics.writes.inc()



