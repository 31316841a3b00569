"""Checks the model writes and the clustering they feed: stdin inputs (AlphaCode-style) against the real sandbox,
faults counted against a program, invalid checks left out; plan-first candidates (PlanSearch); the router and
context plug points."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from atlas_core.sandbox_api import ExecuteRequest
from atlas_engine import (
    Budget,
    Engine,
    Retrieved,
    RouteDecision,
    SandboxRefused,
    Solve,
    SolveRequest,
    SolveResult,
    Step,
    sandbox_request,
)
from atlas_engine.checks import parse_inputs
from atlas_engine.generate import parse_plans
from atlas_engine.select import Candidate, agree, choose
from tests.conftest import ServerThread
from tests.engine.conftest import run_engine
from tests.rag.fake_llm import fake, fenced, user_text

SUM = "Read N and then N integers from standard input and print their sum."
RIGHT = "n = int(input())\nprint(sum(map(int, input().split())))"
RIGHT_TOO = "import sys\nd = sys.stdin.read().split()\nprint(sum(int(x) for x in d[1:]))"
WRONG = "n = int(input())\nprint(max(map(int, input().split())))"
CRASHES = "n = int(input())\nxs = list(map(int, input().split()))\nprint(sum(xs) // (len(xs) - 3))"
INPUTS = "```input\n3\n1 2 3\n```\n```input\n2\n5 5\n```\n```input\n4\n1 1 1 9\n```\n"


def solve(llm: ServerThread, sandbox_url: str, request: SolveRequest, **config: Any) -> SolveResult:
    async def work(engine: Engine) -> SolveResult:
        return (await engine.solve(request))[1]

    return run_engine(llm.url, sandbox_url, work, **config)


def stdin_script(programs: dict[int, str], inputs: str = INPUTS) -> Any:
    def script(body: dict[str, Any]) -> str:
        text = user_text(body)
        if "test inputs" in text:
            return inputs
        return fenced(programs.get(int(body["seed"]) - 100, "print('?')"))
    return script


def test_stdin_programs_with_no_tests_are_clustered_by_their_outputs(llm: ServerThread, sandbox_url: str) -> None:
    """No tests and no examples: the model's inputs decide. Two programs agree on every input, one differs: the
    agreeing pair wins over the shorter odd one."""
    fake(llm).script = stdin_script({0: WRONG, 1: RIGHT_TOO, 2: RIGHT})
    result = solve(llm, sandbox_url, SolveRequest(problem=SUM, seed=100, budget=Budget(k=3, repair_rounds=0)))
    assert result.status == "unverified" and result.tests.generated_inputs == 3
    agreement = {c.index: c.self_agreement for c in result.candidates}
    assert agreement == {0: 1, 1: 2, 2: 2}
    assert result.winner in (1, 2) and result.code is not None and "sum" in result.code
    assert result.timings.sandbox_runs >= 9  # three programs on three inputs
    assert "3 test input(s), agreement score 2" in result.summary


def test_a_program_that_crashes_ranks_after_one_that_runs_cleanly(llm: ServerThread, sandbox_url: str) -> None:
    """The crashing program divides by zero on the three-number input only: one fault on a valid input."""
    fake(llm).script = stdin_script({0: CRASHES, 1: WRONG})
    result = solve(llm, sandbox_url, SolveRequest(problem=SUM, seed=100, budget=Budget(k=2, repair_rounds=0)))
    faults = {c.index: c.faults for c in result.candidates}
    assert faults == {0: 1, 1: 0}
    assert result.winner == 1


def test_without_checks_nothing_is_run(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = stdin_script({0: WRONG, 1: RIGHT_TOO, 2: RIGHT})
    result = solve(llm, sandbox_url, SolveRequest(problem=SUM, seed=100,
                                                  budget=Budget(k=3, self_tests=False, repair_rounds=0)))
    assert result.tests.generated_inputs == 0 and result.timings.sandbox_calls == 0
    assert all(c.self_agreement is None for c in result.candidates)


def test_the_generator_adds_a_larger_input(llm: ServerThread, sandbox_url: str) -> None:
    generator = ("```python\nimport random\nrandom.seed(int(input()))\nn = 50\nprint(n)\n"
                 "print(' '.join(str(random.randint(1, 9)) for _ in range(n)))\n```")
    fake(llm).script = stdin_script({0: WRONG, 1: RIGHT}, INPUTS + generator)
    result = solve(llm, sandbox_url, SolveRequest(problem=SUM, seed=100, budget=Budget(k=2, repair_rounds=0)))
    assert result.tests.generated_inputs == 5  # three written, two generated (seeds 1 and 2)


def test_parse_inputs_takes_distinct_fenced_inputs_and_the_generator() -> None:
    text = "```input\n1 2\n```\n```\n1 2\n```\n```text\n3\n```\n```python\nprint(1)\n```\n```cpp\nint x;\n```"
    inputs, generator = parse_inputs(text, 5)
    assert inputs == ["1 2\n", "3\n"] and generator == "print(1)\n"
    assert parse_inputs("```input\n1\n```\n```input\n2\n```", 1) == (["1\n"], None)


def candidate(index: int, outputs: tuple[str, ...], copies: int = 1) -> Candidate:
    c = Candidate(index=index, origin="sample", temperature=0.0, seed=index, code=f"# {index}", tokens=10)
    c.outputs, c.copies = outputs, copies
    return c


def test_checks_most_programs_fault_on_are_left_out() -> None:
    """Input 1 crashes three of four programs (an input outside the constraints): it neither counts against
    them nor splits them; on input 0 the three agree."""
    pool = [candidate(0, ("a", "!RuntimeError")), candidate(1, ("a", "!RuntimeError")),
            candidate(2, ("a", "!Timeout")), candidate(3, ("b", "x"))]
    agree(pool)
    assert [c.faults for c in pool] == [0, 0, 0, 0]
    assert [c.agreement for c in pool] == [3, 3, 3, 1]
    assert choose(pool) is pool[0]


def test_faults_count_before_agreement_and_all_fault_programs_form_no_cluster() -> None:
    """A time-out on a check that half the programs pass cleanly counts against the program: the pair that ran
    cleanly wins over the pair (one program sampled twice) that timed out."""
    pool = [candidate(0, ("a", "!Timeout"), copies=2), candidate(1, ("a", "c")), candidate(2, ("a", "c")),
            candidate(3, ("!x", "!y"))]
    agree(pool)
    assert [c.faults for c in pool] == [1, 0, 0, 2]
    assert [c.agreement for c in pool] == [2, 2, 2, 0]
    assert choose(pool) is pool[1]


def test_parse_plans() -> None:
    text = ("Here are approaches:\n1. Sort the array and scan\n   adjacent pairs.\n**2)** Use a hash set.\n"
            "3. Sort the array and scan adjacent pairs.\n4. ```code```\n")
    assert parse_plans(text, 3) == ["Sort the array and scan adjacent pairs.", "Use a hash set."]
    assert parse_plans("no numbers here", 2) == []
    labelled = ("**Approach 1: Greedy.** Sort, then:\n1. take the smallest\n2. repeat\n"
                "**Approach 2: DP.** Table over prefixes.\n")
    assert parse_plans(labelled, 2) == ["Greedy. Sort, then: 1. take the smallest 2. repeat",
                                        "DP. Table over prefixes."]


def test_plan_first_candidates_follow_distinct_plans(llm: ServerThread, sandbox_url: str) -> None:
    plans = "1. Add the two numbers with +.\n2. Subtract the negation of b from a.\n"

    def script(body: dict[str, Any]) -> str:
        text = user_text(body)
        if "different approaches" in text:
            return plans
        return fenced("def add(a, b):\n    return a + b" if "approach" not in text else
                      "def add(a, b):\n    return a - (-b)")

    fake(llm).script = script
    problem = "Write a Python function add(a, b) that returns the sum.\n>>> add(2, 3)\n5\n"
    result = solve(llm, sandbox_url, SolveRequest(problem=problem, seed=100,
                                                  budget=Budget(k=3, plans=2, self_tests=False)))
    assert result.plans == ["Add the two numbers with +.", "Subtract the negation of b from a."]
    assert [c.plan for c in result.candidates] == [None, 0, 1]
    prompts = [user_text(b) for b in fake(llm).requests]
    assert sum("Use this approach: Subtract the negation" in p for p in prompts) == 1
    assert "2 candidate(s) from distinct plans" in result.summary


class OneCandidate:
    """A router that sends every solve down one cheap route (and tries to stretch its deadline)."""

    async def decide(self, solve: Solve) -> RouteDecision | None:
        budget = replace(solve.budget, k=1, self_tests=False, deadline_s=solve.budget.deadline_s * 10)
        return RouteDecision(steps=[Step("fast", budget)])

    async def learn(self, solve: Solve, result: SolveResult) -> None:
        return None


class Notes:
    async def context(self, solve: Solve) -> Retrieved | None:
        return Retrieved("A similar solved problem used the builtin sum().", chunks=1, top_score=1.0, citations=[])


def test_router_and_context_plug_in(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = stdin_script({0: RIGHT, 1: WRONG})

    async def work(engine: Engine) -> tuple[Solve, SolveResult]:
        engine.router, engine.context_source = OneCandidate(), Notes()
        return await engine.solve(SolveRequest(problem=SUM, seed=100, budget=Budget(k=2)))

    solve, result = run_engine(llm.url, sandbox_url, work)
    assert len(result.candidates) == 1 and result.tests.generated_inputs == 0
    assert solve.budget.k == 1 and solve.budget.deadline_s == 120  # a route's deadline is the request's
    assert "the builtin sum()" in user_text(fake(llm).requests[0])


def test_a_request_the_sandbox_would_refuse_is_refused_before_any_call() -> None:
    with pytest.raises(SandboxRefused, match="would refuse this run"):
        sandbox_request(ExecuteRequest, code="print('\ud800')")
    assert sandbox_request(ExecuteRequest, code="print(1)", stdin="").model_dump(exclude_none=True)["code"]


def test_programs_that_fault_everywhere_have_no_say_in_which_checks_count() -> None:
    """Three of five programs do not compile (a fault on every check): the two that run decide, so the
    one that crashes on the second input loses to the one that runs it."""
    broken = [candidate(i, ("!CompileError", "!CompileError")) for i in range(3)]
    pool = [*broken, candidate(3, ("a", "!RuntimeError")), candidate(4, ("a", "b"))]
    agree(pool)
    assert [c.faults for c in pool] == [2, 2, 2, 1, 0]
    assert choose(pool) is pool[4]


def test_a_check_the_deadline_stopped_is_left_out_for_everyone() -> None:
    pool = [candidate(0, ("a", "?")), candidate(1, ("a", "x")), candidate(2, ("b", "x"))]
    agree(pool)
    assert [c.faults for c in pool] == [0, 0, 0]
    assert [c.agreement for c in pool] == [2, 2, 1]
