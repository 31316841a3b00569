"""Thompson sampling over routes, per difficulty bin, with Beta posteriors kept in Redis.

Each (bin, route) is one Redis hash: ``a`` and ``b`` (the Beta parameters, from Beta(1, 1)), ``n`` (outcomes) and
``cost`` (the compute those outcomes really spent). Updates are HINCRBY/HINCRBYFLOAT in one MULTI, so concurrent
updates from every rag-api replica and task-worker add up and none is lost. A route is chosen by the sampled
success per unit of its mean measured cost in the bin; with probability ``explore`` uniformly instead, so no route
is starved of outcomes."""

from __future__ import annotations

import random
from dataclasses import dataclass

from redis.asyncio import Redis

from atlas_engine import ROUTES, RouteName
from atlas_router.signals import BINS

PREFIX = "atlas:router:arm"
# PLATFORM.md §5's costs (1 : 50 : 300 : 1500) in tokens, until measured costs outweigh them.
PRIOR_COSTS: dict[RouteName, float] = {"cache": 12.0, "fast": 600.0, "standard": 3600.0, "deep": 18000.0}
PRIOR_WEIGHT = 2.0  # the prior cost counts as this many outcomes


@dataclass(frozen=True)
class Arm:
    alpha: float = 1.0
    beta: float = 1.0
    n: int = 0
    cost_sum: float = 0.0

    def cost(self, route: RouteName) -> float:
        return (PRIOR_COSTS[route] * PRIOR_WEIGHT + self.cost_sum) / (PRIOR_WEIGHT + self.n)

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)


@dataclass(frozen=True)
class Choice:
    route: RouteName
    ceiling: RouteName  # the route with the highest sampled success (where a failing solve may escalate to)
    sampled: dict[RouteName, float]
    explored: bool


def key(bin_: str, route: str) -> str:
    return f"{PREFIX}:{bin_}:{route}"


class Posteriors:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def read(self, bin_: str) -> dict[RouteName, Arm]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for route in ROUTES:
                pipe.hgetall(key(bin_, route))
            rows = await pipe.execute()
        return {route: _arm(row) for route, row in zip(ROUTES, rows, strict=True)}

    async def everything(self) -> dict[str, dict[RouteName, Arm]]:
        return {b: await self.read(b) for b in BINS}

    async def update(self, bin_: str, route: RouteName, ok: bool, cost: float) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            k = key(bin_, route)
            pipe.hincrbyfloat(k, "a" if ok else "b", 1.0)
            pipe.hincrby(k, "n", 1)
            pipe.hincrbyfloat(k, "cost", max(0.0, cost))
            await pipe.execute()

    async def reset(self) -> int:
        return int(await self.redis.delete(*(key(b, r) for b in BINS for r in ROUTES)))


def _arm(row: dict[bytes | str, bytes | str]) -> Arm:
    def num(name: str) -> float:
        value = row.get(name) or row.get(name.encode())
        return float(value) if value is not None else 0.0

    return Arm(alpha=1.0 + num("a"), beta=1.0 + num("b"), n=int(num("n")), cost_sum=num("cost"))


def choose(arms: dict[RouteName, Arm], eligible: list[RouteName], explore: float, rng: random.Random,
           value: float | None = None) -> Choice:
    """The first route: argmax over ``eligible`` (cheapest first) of sampled success / mean cost (or, with
    probability ``explore``, uniformly). The ceiling, how far a failing solve may escalate: with ``value`` (what a
    success is worth in compute), the last of the routes after the first that each pay for themselves (sampled
    success x value >= mean cost); without, the route of highest sampled success."""
    sampled = {r: rng.betavariate(arms[r].alpha, arms[r].beta) for r in eligible}
    explored = rng.random() < explore
    first = rng.choice(eligible) if explored else max(eligible, key=lambda r: sampled[r] / arms[r].cost(r))
    if value is None:
        ceiling = max(eligible, key=lambda r: (sampled[r], -ROUTES.index(r)))
    else:
        ceiling = first
        for r in eligible[eligible.index(first) + 1:]:
            if sampled[r] * value < arms[r].cost(r):
                break
            ceiling = r
    return Choice(first, ceiling, sampled, explored)
