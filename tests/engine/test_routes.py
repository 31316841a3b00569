"""Routes through the engine (the real sandbox, the scripted model): a step that fails its public tests escalates
to the next, which keeps what the first produced; a step that passes ends the solve; a cached pattern is judged
before any model call; escalation stops when the token cap is spent; each step's spending is recorded and the
router learns once, from the result."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from atlas_engine import Budget, Engine, RouteDecision, Solve, SolveRequest, SolveResult, Step, TestIn
from tests.conftest import ServerThread
from tests.engine.conftest import run_engine
from tests.engine.test_checks import RIGHT, SUM, WRONG, stdin_script
from tests.rag.fake_llm import fake, user_text

TESTS = [TestIn(input="3\n1 2 3\n", output="6\n")]


class Scripted:
    """A router that always takes the given steps: (route, budget changes, pattern code)."""

    def __init__(self, *steps: tuple[str, dict[str, Any], str | None]) -> None:
        self.steps = steps
        self.learned: list[SolveResult] = []

    async def decide(self, solve: Solve) -> RouteDecision | None:
        return RouteDecision(steps=[Step(r, replace(solve.budget, **kw), code)  # type: ignore[arg-type]
                                    for r, kw, code in self.steps],
                             bin="LOW", difficulty=0.2, context="A similar solved problem used the builtin sum().")

    async def learn(self, solve: Solve, result: SolveResult) -> None:
        self.learned.append(result)


FAST = ("fast", {"k": 1, "repair_rounds": 0, "self_tests": False}, None)
STANDARD = ("standard", {"k": 3, "repair_rounds": 0, "self_tests": False}, None)
DEEP = ("deep", {"k": 5, "repair_rounds": 0, "self_tests": False}, None)


def routed(llm: ServerThread, sandbox_url: str, router: Scripted, token_cap: int | None = None,
           events: list[dict[str, Any]] | None = None) -> tuple[Solve, SolveResult]:
    async def work(engine: Engine) -> tuple[Solve, SolveResult]:
        engine.router = router
        solve = engine.start(SolveRequest(problem=SUM, tests=TESTS, seed=100, budget=Budget(repair_rounds=0)))
        solve.token_cap = token_cap

        async def progress(event: dict[str, Any]) -> None:
            (events if events is not None else []).append(event)

        return solve, await engine.run(solve, progress)

    return run_engine(llm.url, sandbox_url, work)


def test_a_failing_route_escalates_and_keeps_what_it_made(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = stdin_script({0: WRONG, 1: WRONG, 2: RIGHT})
    router, events = Scripted(FAST, STANDARD, DEEP), list[dict[str, Any]]()
    _, result = routed(llm, sandbox_url, router, events=events)
    assert result.verified and result.route is not None and result.route.route == "fast"
    assert [(s.route, s.verified) for s in result.route.steps] == [("fast", False), ("standard", True)]
    assert all(s.tokens > 0 and s.sandbox_s > 0 for s in result.route.steps)
    assert sum(s.tokens for s in result.route.steps) == result.usage["total_tokens"]
    assert [c.index for c in result.candidates] == [0, 1, 2]  # standard wrote 2 more, not 3 (deep never ran)
    assert result.candidates[result.winner or 0].code == RIGHT
    assert all("the builtin sum()" in user_text(b) for b in fake(llm).requests)  # the decision's context
    announced = [(e["route"], e.get("escalated", False)) for e in events if e.get("stage") == "route"]
    assert announced == [("fast", False), ("standard", True)]  # the decision, then the escalation
    assert "route fast -> standard" in result.summary
    assert router.learned == [result]


def test_a_route_that_passes_ends_the_solve(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = stdin_script({0: RIGHT})
    _, result = routed(llm, sandbox_url, Scripted(FAST, STANDARD))
    assert result.verified and result.route is not None
    assert [s.route for s in result.route.steps] == ["fast"] and len(result.candidates) == 1


def test_a_cached_pattern_is_judged_before_any_model_call(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = stdin_script({0: WRONG})
    _, result = routed(llm, sandbox_url, Scripted(("cache", {"k": 0, "repair_rounds": 0, "self_tests": False},
                                                   RIGHT), FAST))
    assert result.verified and result.route is not None and result.route.cache_hit
    assert fake(llm).requests == []
    assert [(s.route, s.tokens) for s in result.route.steps] == [("cache", 0)]
    assert result.candidates[0].origin == "pattern" and "a verified pattern answered" in result.summary


def test_a_failing_pattern_escalates_to_generation(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = stdin_script({0: RIGHT})
    _, result = routed(llm, sandbox_url, Scripted(("cache", {"k": 0, "repair_rounds": 0, "self_tests": False},
                                                   WRONG), FAST))
    assert result.verified and result.route is not None and not result.route.cache_hit
    assert [(s.route, s.verified) for s in result.route.steps] == [("cache", False), ("fast", True)]


def test_escalation_stops_at_the_token_cap(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = stdin_script({0: WRONG, 1: RIGHT, 2: RIGHT})
    _, result = routed(llm, sandbox_url, Scripted(FAST, STANDARD, DEEP), token_cap=1)
    assert result.stopped == "budget" and not result.verified and result.route is not None
    assert [(s.route, s.complete) for s in result.route.steps] == [("fast", False)]
    assert fake(llm).requests == []
