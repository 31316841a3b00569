"""The confidence router in the engine (real Redis, the real sandbox, the scripted model): routes really set the
work, verified outcomes move the posteriors, a pattern is written only from a verified success and only its
owner gets it back (as context, and near-identical as the cache route's answer), a request that names k is
obeyed, and Redis or embeddings down leave the solve as it would have been."""

from __future__ import annotations

import random
from typing import Any

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from atlas_engine import Budget, Engine, EngineConfig, SolveRequest, SolveResult, TestIn
from atlas_router import ConfidenceRouter, PatternCache, Posteriors
from atlas_router.metrics import RouterMetrics
from tests.conftest import RedisServer, ServerThread
from tests.engine.conftest import run_engine
from tests.engine.test_checks import RIGHT, SUM, WRONG, stdin_script
from tests.rag.fake_llm import fake, user_text
from tests.router.helpers import WordEmbedder, settings, with_redis

TESTS = [TestIn(input="3\n1 2 3\n", output="6\n")]


def request(user_budget: Budget | None = None, tests: list[TestIn] | None = None) -> SolveRequest:
    return SolveRequest(problem=SUM, tests=TESTS if tests is None else tests, seed=100,
                        budget=user_budget or Budget())


def solves(llm: ServerThread, sandbox_url: str, redis_server: RedisServer,
           runs: list[tuple[str, SolveRequest]], embedder: WordEmbedder | None = None,
           **extra: Any) -> tuple[list[SolveResult], dict[str, Any]]:
    """Each (user, request) through one engine with a ConfidenceRouter; the posteriors and patterns after."""
    with_redis(redis_server, clean)

    async def go(engine: Engine) -> tuple[list[SolveResult], dict[str, Any]]:
        redis = Redis.from_url(redis_server.url, password=redis_server.password)
        try:
            engine.router = ConfidenceRouter(Posteriors(redis), PatternCache(redis), embedder or WordEmbedder(),
                                             settings(**extra), engine.config, RouterMetrics(CollectorRegistry()),
                                             random.Random(7))
            out = []
            for user, req in runs:
                solve = engine.start(req)
                solve.owner = user
                out.append(await engine.run(solve))
            return out, {"arms": await Posteriors(redis).everything(),
                         "alice": await PatternCache(redis).patterns("alice"),
                         "bob": await PatternCache(redis).patterns("bob")}
        finally:
            await redis.aclose()

    return run_engine(llm.url, sandbox_url, go, k=5, repair_rounds=0)


async def clean(redis: Redis) -> None:
    return None  # with_redis empties the router's and the cache's keys first


def outcomes(state: dict[str, Any]) -> dict[tuple[str, str], tuple[float, float]]:
    return {(b, r): (a.alpha - 1, a.beta - 1) for b, arms in state["arms"].items() for r, a in arms.items() if a.n}


def test_failures_teach_the_posteriors_and_write_no_pattern(llm: ServerThread, sandbox_url: str,
                                                              redis_server: RedisServer) -> None:
    fake(llm).script = stdin_script({})  # every program prints '?'
    results, state = solves(llm, sandbox_url, redis_server, [("alice", request())], router_explore=0.0,
                            router_escalate="budget")
    r = results[0].route
    assert r is not None and not results[0].verified
    assert [s.route for s in r.steps] == ["fast", "standard", "deep"][["fast", "standard", "deep"].index(r.route):]
    assert outcomes(state) == {(r.bin, s.route): (0.0, 1.0) for s in r.steps}  # one failure per route run
    assert state["alice"] == []  # nothing verified: nothing kept
    # the samples the route asked for, and no more: fast k=1, standard k=5, deep k=20 in all
    samples = sum(c.origin == "sample" for c in results[0].candidates)
    assert samples == {"fast": 20, "standard": 20, "deep": 20}[r.route]


def test_a_verified_success_becomes_its_owners_pattern_and_only_theirs(llm: ServerThread, sandbox_url: str,
                                                                        redis_server: RedisServer) -> None:
    fake(llm).script = stdin_script({i: RIGHT for i in range(20)})
    results, state = solves(llm, sandbox_url, redis_server,
                            [("alice", request()), ("bob", request()), ("alice", request())], router_explore=0.0)
    first, bobs, again = results
    assert first.verified and first.route is not None and not first.route.cache_hit
    assert [p.description[:20] for p in state["alice"]] == [SUM[:20]]
    assert bobs.route is not None and bobs.route.patterns == [] and not bobs.route.cache_hit  # not alice's
    assert again.route is not None and again.route.cache_hit and again.route.route == "cache"
    assert again.route.patterns[0]["similarity"] > 0.99 and again.tokens.completion == 0
    assert again.candidates[0].origin == "pattern" and again.code == first.code
    assert len(state["bob"]) == 1 and state["alice"][0].accesses == 1 and state["alice"][0].successes == 1
    wins = outcomes(state)
    assert wins[(str(again.route.bin), "cache")] == (1.0, 0.0)


def test_context_from_a_similar_pattern_reaches_the_prompt(llm: ServerThread, sandbox_url: str,
                                                            redis_server: RedisServer) -> None:
    fake(llm).script = stdin_script({i: RIGHT for i in range(20)})
    similar = SUM.replace("print their sum", "print the sum of them")
    results, _ = solves(llm, sandbox_url, redis_server,
                        [("alice", request()), ("alice", SolveRequest(problem=similar, tests=TESTS, seed=100))],
                        router_explore=0.0, pattern_hit=0.999)
    second = results[1].route
    assert second is not None and not second.cache_hit and 0.5 < second.patterns[0]["similarity"] < 0.999
    assert second.signals["pattern"] < 0.5  # a close pattern: an easier problem
    assert "Verified solutions to similar problems" in user_text(fake(llm).requests[-1])


def test_a_request_that_names_k_is_obeyed_and_teaches_no_posterior(llm: ServerThread, sandbox_url: str,
                                                                    redis_server: RedisServer) -> None:
    fake(llm).script = stdin_script({0: WRONG, 1: RIGHT, 2: RIGHT})
    results, state = solves(llm, sandbox_url, redis_server, [("alice", request(Budget(k=3, repair_rounds=0)))])
    r = results[0].route
    assert r is not None and r.route == "requested" and [s.route for s in r.steps] == ["requested"]
    assert sum(c.origin == "sample" for c in results[0].candidates) == 3
    assert outcomes(state) == {} and len(state["alice"]) == 1  # no posterior; the verified answer is a pattern


def test_learn_false_keeps_nothing_and_untested_solves_teach_nothing(llm: ServerThread, sandbox_url: str,
                                                                      redis_server: RedisServer) -> None:
    fake(llm).script = stdin_script({i: RIGHT for i in range(20)})
    results, state = solves(llm, sandbox_url, redis_server,
                            [("alice", request(Budget(learn=False))), ("alice", request(tests=[]))])
    assert results[0].verified and results[1].status == "unverified"
    assert outcomes(state) == {} and state["alice"] == []


def test_embeddings_or_redis_down_leave_the_solve_as_it_was(llm: ServerThread, sandbox_url: str,
                                                             redis_server: RedisServer) -> None:
    fake(llm).script = stdin_script({i: RIGHT for i in range(20)})
    down = WordEmbedder()
    down.down = True
    results, _ = solves(llm, sandbox_url, redis_server, [("alice", request())], embedder=down)
    assert results[0].verified and results[0].route is not None and "pattern" not in results[0].route.signals

    async def go(engine: Engine) -> SolveResult:
        dead = Redis(port=1, socket_connect_timeout=0.2)  # nothing listens there
        engine.router = ConfidenceRouter(Posteriors(dead), PatternCache(dead), WordEmbedder(), settings(),
                                         engine.config, RouterMetrics(CollectorRegistry()))
        return (await engine.solve(request()))[1]

    result = run_engine(llm.url, sandbox_url, go, k=2, repair_rounds=0)
    assert result.verified and result.route is None and len(result.candidates) == 2  # the default budget


def test_route_budgets_keep_what_the_request_named() -> None:
    from atlas_engine import Engine as _Engine

    engine = _Engine(None, None, EngineConfig(k=5, repair_rounds=2))  # type: ignore[arg-type]
    router = ConfidenceRouter(None, None, None, settings(), engine.config,  # type: ignore[arg-type]
                              RouterMetrics(CollectorRegistry()))
    solve = engine.start(SolveRequest(problem=SUM, budget=Budget(repair_rounds=0, max_tokens=64)))
    fast, standard, deep = (router.budget(r, solve) for r in ("fast", "standard", "deep"))
    assert (fast.k, standard.k, deep.k) == (1, 5, 20)
    assert fast.repair_rounds == standard.repair_rounds == deep.repair_rounds == 0  # named: held everywhere
    assert {fast.max_tokens, standard.max_tokens, deep.max_tokens} == {64}
    assert deep.plans == 8 and fast.self_tests is False and deep.self_tests is True
    free = engine.start(SolveRequest(problem=SUM))
    assert router.budget("deep", free).repair_rounds == 3 and router.budget("fast", free).repair_rounds == 1
