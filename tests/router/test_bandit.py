"""The bandit: posteriors that move the right way on a scripted sequence of outcomes, concurrent updates that all
count, a choice by sampled success per unit of measured cost, an exploration floor, a reset."""

from __future__ import annotations

import asyncio
import random

from redis.asyncio import Redis

from atlas_engine import RouteName
from atlas_router import PRIOR_COSTS, Arm, Posteriors, choose
from tests.conftest import RedisServer
from tests.router.helpers import with_redis


def test_posteriors_move_the_right_way_on_scripted_outcomes(redis_server: RedisServer) -> None:
    async def work(redis: Redis) -> None:
        p = Posteriors(redis)
        assert (await p.read("LOW"))["fast"] == Arm()  # Beta(1, 1), nothing measured
        for ok in (True, True, True, False):
            await p.update("LOW", "fast", ok, 500.0)
        for ok in (False, False, False, True):
            await p.update("LOW", "deep", ok, 20000.0)
        low, high = await p.read("LOW"), await p.read("HIGH")
        assert (low["fast"].alpha, low["fast"].beta, low["fast"].n) == (4.0, 2.0, 4)
        assert (low["deep"].alpha, low["deep"].beta) == (2.0, 4.0)
        assert low["fast"].mean > 0.5 > low["deep"].mean
        assert high["fast"] == Arm()  # another bin learned nothing
        # the measured cost pulls the prior toward it: 4 outcomes of 500 against the prior's 2 of 600
        assert low["fast"].cost("fast") == (2 * PRIOR_COSTS["fast"] + 4 * 500.0) / 6
        assert await p.reset() == 2 and (await p.read("LOW"))["fast"] == Arm()

    with_redis(redis_server, work)


def test_concurrent_updates_are_never_lost(redis_server: RedisServer) -> None:
    async def work(redis: Redis) -> Arm:
        others = [Redis.from_url(redis_server.url, password=redis_server.password) for _ in range(4)]
        try:  # four replicas, fifty outcomes each, at once
            await asyncio.gather(*(Posteriors(r).update("MEDIUM", "standard", i % 2 == 0, 10.0)
                                   for r in others for i in range(50)))
        finally:
            for r in others:
                await r.aclose()
        return (await Posteriors(redis).read("MEDIUM"))["standard"]

    arm = with_redis(redis_server, work)
    assert (arm.alpha, arm.beta, arm.n, arm.cost_sum) == (101.0, 101.0, 200, 2000.0)


def test_the_choice_is_sampled_success_per_unit_of_cost() -> None:
    rng = random.Random(0)
    cheap_bad: dict[RouteName, Arm] = {"fast": Arm(2, 60, 60, 60 * 600), "standard": Arm(50, 10, 60, 60 * 3600),
                 "deep": Arm(55, 5, 60, 60 * 18000), "cache": Arm()}
    picks = [choose(cheap_bad, ["fast", "standard", "deep"], 0.0, rng) for _ in range(200)]
    # fast: ~3% for 600; standard: ~83% for 3600; deep: ~92% for 18000: standard gives the most per token
    assert sum(c.route == "standard" for c in picks) > 190
    assert sum(c.ceiling == "deep" for c in picks) > 150  # yet deep is the likeliest to pass: the ceiling
    cheap_good: dict[RouteName, Arm] = {**cheap_bad, "fast": Arm(50, 10, 60, 60 * 600)}
    assert all(choose(cheap_good, ["fast", "standard", "deep"], 0.0, rng).route == "fast" for _ in range(100))


def test_a_failing_solve_escalates_only_to_routes_that_pay_for_themselves() -> None:
    """Escalation by value: a route is worth trying after a failure when its sampled success times what a success
    is worth covers its mean cost, so a bin where deep keeps failing stops paying for deep."""
    rng = random.Random(2)
    routes: list[RouteName] = ["fast", "standard", "deep"]
    hopeful: dict[RouteName, Arm] = {"fast": Arm(2, 30, 30, 30 * 600), "standard": Arm(30, 10, 40, 40 * 3600),
                                     "deep": Arm(40, 2, 40, 40 * 18000), "cache": Arm()}
    assert all(choose(hopeful, routes, 0.0, rng, value=40_000).ceiling == "deep" for _ in range(50))
    hopeless = {**hopeful, "deep": Arm(1, 40, 40, 40 * 18000)}
    picks = [choose(hopeless, routes, 0.0, rng, value=40_000) for _ in range(100)]
    assert all(c.ceiling == "standard" for c in picks if c.route == "standard")
    cheap = [choose(hopeless, routes, 0.0, rng, value=1_000) for _ in range(100)]  # a success is worth little
    assert all(c.ceiling == c.route for c in cheap)


def test_the_exploration_floor_starves_no_route() -> None:
    rng = random.Random(1)
    arms: dict[RouteName, Arm] = {"fast": Arm(60, 2, 60, 60 * 600), "standard": Arm(), "deep": Arm(), "cache": Arm()}
    picks = [choose(arms, ["fast", "standard", "deep"], 0.3, rng) for _ in range(600)]
    explored = [c for c in picks if c.explored]
    assert 120 < len(explored) < 240
    assert {c.route for c in explored} == {"fast", "standard", "deep"}
    assert all(c.route == "fast" for c in picks if not c.explored)
