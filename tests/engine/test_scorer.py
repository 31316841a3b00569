"""The engine's scorer and estimator plug points: ties ordered by energy, the pick a scorer changed reported,
judging in energy order stopping at the first pass, and a request that turns the scorer off."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from atlas_engine import Budget, Engine, EngineConfig, LLMClient, Problem, SandboxClient, SolveRequest, SolveResult
from tests.conftest import LLAMA_KEY, SANDBOX_SIGNING, ServerThread
from tests.engine.test_engine import ADD, ALSO_RIGHT, RIGHT, WRONG, by_seed
from tests.rag.fake_llm import fake, fenced


class Energies:
    """A scorer that likes code containing ``favourite``; counts the programs it saw."""

    def __init__(self, favourite: str) -> None:
        self.favourite = favourite
        self.seen: list[str] = []

    async def score(self, problem_text: str, codes: list[str]) -> list[float | None]:
        self.seen += codes
        return [1.0 if self.favourite in c else 9.0 for c in codes]

    async def difficulty(self, problem: Problem) -> float | None:
        return 0.75


def solve(llm: ServerThread, sandbox_url: str, request: SolveRequest, scorer: Energies) -> SolveResult:
    async def main() -> SolveResult:
        async with httpx.AsyncClient() as http:
            engine = Engine(LLMClient(http, llm.url, LLAMA_KEY, parallel=4), SandboxClient(http, sandbox_url,
                            SANDBOX_SIGNING), EngineConfig(self_tests=False, repair_rounds=0), scorer=scorer,
                            estimator=scorer)
            return (await engine.solve(request))[1]

    return asyncio.run(main())


def _verdicts(result: SolveResult) -> Sequence[str]:
    return [c.verdict for c in sorted(result.candidates, key=lambda c: c.index)]


def test_energy_breaks_a_tie_between_passing_programs_and_says_it_changed_the_pick(llm: ServerThread,
                                                                                   sandbox_url: str) -> None:
    fake(llm).script = by_seed({0: fenced(RIGHT), 1: fenced(ALSO_RIGHT)})
    result = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=100, budget=Budget(k=2)), Energies("b + a"))
    assert result.winner == 1 and result.lens_changed_pick is True  # without energies, fewer tokens/index 0 win
    assert result.difficulty == 0.75
    assert {c.index: c.score for c in result.candidates} == {0: 9.0, 1: 1.0}


def test_a_request_can_turn_the_scorer_off(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = by_seed({0: fenced(RIGHT), 1: fenced(ALSO_RIGHT)})
    scorer = Energies("b + a")
    result = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=100, budget=Budget(k=2, lens=False)), scorer)
    assert result.winner == 0 and result.lens_changed_pick is None and scorer.seen == []


def test_stop_on_first_pass_judges_in_energy_order_and_runs_no_more_programs(llm: ServerThread,
                                                                             sandbox_url: str) -> None:
    """The favourite goes to the sandbox first and wins; how many others the sandbox had started before its pass
    stopped them depends on its workers, so only "no more runs than judging all" is certain."""
    fake(llm).script = by_seed({0: fenced(WRONG), 1: fenced("def add(a, b):\n    return a * b"),
                                2: fenced(ALSO_RIGHT), 3: fenced(RIGHT)})
    scorer = Energies("a + b")
    full = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=100, budget=Budget(k=4)), scorer)
    stop = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=100, budget=Budget(k=4, stop_on_first_pass=True)),
                 scorer)
    assert full.verified and stop.verified and full.winner == stop.winner == 3
    assert _verdicts(stop)[3] == "passed"
    assert set(_verdicts(stop)[:3]) <= {"TestFailure", "passed", "Skipped"}
    assert stop.timings.sandbox_runs <= full.timings.sandbox_runs
    plain = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=100, budget=Budget(
        k=4, stop_on_first_pass=True, lens=False)), scorer)
    assert plain.verified and plain.lens_changed_pick is None  # generation order (the first to pass wins), no energies
