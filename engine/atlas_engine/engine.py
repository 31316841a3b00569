"""The verified-generation engine: k candidates, judged in the sandbox on the tests a user has, checked against
each other on checks the model writes, repaired from their failures, one selected, within a budget.

The stages, each its own module and testable alone: ``generate`` (samples, plan-first ones), ``judge`` (public
tests), ``checks`` (self-written checks and clustering), ``repair``, ``answer``. Four plug points, all optional:

- a ``Router`` sees the problem before anything is spent and chooses its route (``routes``): a cheap path for
  easy problems, a deep one for hard ones, escalating while the public tests fail, never past the request's
  deadline or the caller's token cap; it learns from each verified outcome;
- a ``ContextSource`` gives retrieved material (similar solved problems, code) that the generation prompts carry;
- a ``Scorer`` orders what the tests and the checks leave tied (the Geometric Lens's C(x)), and the order in
  which candidates are judged when one passing program is enough (``stop_on_first_pass``);
- an ``Estimator`` gives the problem's difficulty before anything is spent (the Lens's G(x)), for the result and
  for a router.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Protocol

from atlas_engine.answer import result
from atlas_engine.calls import ModelCalls, PromptStyle
from atlas_engine.checks import Checker
from atlas_engine.contracts import SolveRequest, SolveResult
from atlas_engine.generate import Generator
from atlas_engine.judge import PublicJudge
from atlas_engine.llm import LLMClient
from atlas_engine.parse import build_problem
from atlas_engine.problem import Problem, Workspace
from atlas_engine.repair import Repairer
from atlas_engine.routes import RouteDecision, StepRun
from atlas_engine.sandbox import SandboxClient
from atlas_engine.select import Candidate, Scorer
from atlas_engine.solve import CARRIED_BASE, Progress, Retrieved, Solve, SolveBudget, problem_seed, quiet

PATTERN_INDEX = 2000  # the index of a cached pattern's program (after any sample and carried program)


def announce(decision: RouteDecision) -> dict[str, Any]:
    """The router's choice as a progress event (a task's events carry it)."""
    route = " -> ".join(s.route for s in decision.steps) or "requested"
    why = f"difficulty {decision.difficulty:.2f} ({decision.bin})" if decision.difficulty is not None else ""
    hits = f", {len(decision.patterns)} similar verified pattern(s)" if decision.patterns else ""
    return {"stage": "route", "route": decision.route, "steps": [s.route for s in decision.steps],
            "bin": decision.bin, "difficulty": decision.difficulty, "signals": decision.signals,
            "sampled": decision.sampled, "explored": decision.explored, "patterns": decision.patterns,
            "message": f"route {route}" + (f": {why}" if why else "") + hits}


@dataclass(frozen=True)
class EngineConfig:
    k: int = 5
    max_tokens: int = 512
    repair_rounds: int = 2
    deadline_s: float = 120.0
    self_tests: bool = True
    self_test_count: int = 6  # asserts or inputs the model is asked for
    plans: int = 0  # candidates written from distinct plans, unless the request says
    repair_width: int = 2  # failing candidates repaired per round
    prompt_style: PromptStyle = "chat"
    test_timeout_s: float = 6.0  # per test, as LiveCodeBench's harness
    lens: bool = True  # the scorer orders ties unless the request says otherwise
    deep_k: int = 20  # the router's deep route: candidates, plan-first ones, repair rounds
    deep_plans: int = 8
    deep_repairs: int = 3


class Router(Protocol):
    """Chooses a solve's route before anything is spent (None: the budget as it is), and learns from how it
    went. Both never raise: a router that cannot decide or record leaves the solve as it would have been."""

    async def decide(self, solve: Solve) -> RouteDecision | None: ...

    async def learn(self, solve: Solve, result: SolveResult) -> None: ...


class ContextSource(Protocol):
    """Retrieved material for a solve (None: nothing relevant, or the solve names no source); the generation
    prompts carry it, and the router reads its confidence. Never raises (None instead)."""

    async def context(self, solve: Solve) -> Retrieved | None: ...


class Estimator(Protocol):
    """The problem's difficulty, 0 (easy) to 1 (hard); None: no estimate. Never raises (no estimate instead)."""

    async def difficulty(self, problem: Problem) -> float | None: ...


class Engine:
    def __init__(self, llm: LLMClient, sandbox: SandboxClient, config: EngineConfig, scorer: Scorer | None = None,
                 router: Router | None = None, context: ContextSource | None = None,
                 estimator: Estimator | None = None) -> None:
        self.llm = llm
        self.sandbox = sandbox
        self.config = config
        self.scorer = scorer
        self.router = router
        self.context_source = context
        self.estimator = estimator
        self.calls = ModelCalls(llm, config.prompt_style)
        self.generator = Generator(self.calls)
        self.judge = PublicJudge(sandbox, config.test_timeout_s)
        self.checker = Checker(self.calls, sandbox, config.self_test_count, config.test_timeout_s)
        self.repairer = Repairer(self.calls, self.judge, self.checker, config.repair_width)

    def budget(self, request: SolveRequest) -> SolveBudget:
        b, c = request.budget, self.config
        return SolveBudget(k=b.k or c.k, max_tokens=b.max_tokens or c.max_tokens,
                           repair_rounds=c.repair_rounds if b.repair_rounds is None else b.repair_rounds,
                           deadline_s=b.deadline_s or c.deadline_s,
                           self_tests=c.self_tests if b.self_tests is None else b.self_tests,
                           plans=c.plans if b.plans is None else b.plans,
                           lens=c.lens if b.lens is None else b.lens,
                           stop_on_first_pass=bool(b.stop_on_first_pass), learn=b.learn is not False,
                           patterns=b.patterns is not False)

    def start(self, request: SolveRequest, workspace: Workspace | None = None) -> Solve:
        """Parse the request into a solve (ProblemError for tests that cannot run as given); a ``workspace``
        adds a project's own tests and the files they run among."""
        return Solve(id=uuid.uuid4().hex, problem=build_problem(request, workspace), budget=self.budget(request),
                     seed=request.seed if request.seed is not None else problem_seed(request.problem),
                     asked=request.budget, context=request.context, project=request.project)

    async def solve(self, request: SolveRequest, progress: Progress | None = None) -> tuple[Solve, SolveResult]:
        solve = self.start(request)
        return solve, await self.run(solve, progress)

    async def run(self, solve: Solve, progress: Progress | None = None) -> SolveResult:
        say = progress or quiet
        solve.deadline = time.monotonic() + solve.budget.deadline_s
        try:
            async with asyncio.timeout(solve.budget.deadline_s):
                if self.context_source is not None:  # before the router: its retrieval signal reads it
                    solve.retrieved = await self.context_source.context(solve)
                    if solve.retrieved is not None:
                        solve.context = "\n\n".join(x for x in (solve.context, solve.retrieved.text) if x)
                if self.estimator is not None:
                    solve.difficulty = await self.estimator.difficulty(solve.problem)
                if self.router is not None:
                    solve.decision = await self.router.decide(solve)
                    if solve.decision is not None:
                        await say(announce(solve.decision))
                if solve.decision is not None and solve.decision.context:
                    solve.context = "\n\n".join(x for x in (solve.context, solve.decision.context) if x)
                await self._steps(solve, say)
        except TimeoutError:
            solve.stopped = "deadline"
            await say({"stage": "deadline", "message": f"deadline of {solve.budget.deadline_s:g}s reached; "
                                                          "choosing from what was checked"})
        answer = result(solve)
        if self.router is not None and solve.decision is not None:
            await self.router.learn(solve, answer)
        return answer

    async def _steps(self, solve: Solve, say: Progress) -> None:
        """The decision's steps in turn (the budget as it is without one): the next only while the public tests
        fail, and while the token cap allows. Each step's spending is recorded, even when the deadline stops it."""
        decision = solve.decision
        if decision is None:
            await self._stages(solve, say)
            return
        deadline_s = solve.budget.deadline_s  # the request's: every step shares the solve's one deadline
        for n, step in enumerate(decision.steps):
            if n and (solve.verified() or not solve.problem.tests or solve.stopped != "done"):
                return
            if n:
                await say({"stage": "route", "route": step.route, "escalated": True,
                           "message": f"escalating to the {step.route} route: {step.budget.k} candidate(s), "
                                      f"{step.budget.repair_rounds} repair round(s)"})
            solve.budget = replace(step.budget, deadline_s=deadline_s)
            tokens, sandbox_s = solve.prompt_tokens + solve.completion_tokens, solve.timeline.totals()["sandbox_s"]
            run = StepRun(step.route, False, 0, 0.0, complete=False)
            decision.runs.append(run)
            try:
                if step.code is not None:
                    solve.add(Candidate(index=PATTERN_INDEX, origin="pattern", temperature=0.0, seed=None,
                                        code=step.code, tokens=0))
                await self._stages(solve, say)
                run.complete = solve.stopped == "done"
            finally:
                run.verified = solve.verified()
                run.tokens = solve.prompt_tokens + solve.completion_tokens - tokens
                run.sandbox_s = round(solve.timeline.totals()["sandbox_s"] - sandbox_s, 4)

    async def _stages(self, solve: Solve, say: Progress) -> None:
        budget = solve.budget
        if budget.k:
            await say({"stage": "generate", "message": f"generating {budget.k} candidate(s)"})
            await self.generator.generate(solve, budget.k, say)
        if budget.stop_on_first_pass and solve.problem.tests:
            if await self._first_pass(solve, say):
                return
        else:
            await self.judge.judge(solve, say)
        if budget.self_tests and self.checker.wanted(solve):
            if not solve.self_tests:  # an escalated solve checks its new programs on the checks it has
                await self.checker.write(solve, say)
            await self.checker.run(solve, say)
        await self.repairer.rounds(solve, budget.repair_rounds, say)
        await self.score(solve)

    def carry(self, solve: Solve, programs: list[str]) -> None:
        """Programs that failed an earlier attempt join this one: they are judged again with the new samples
        (which gives their failures on this attempt's tests), and the repair rounds start from the best of
        them, fed back with what failed."""
        for n, code in enumerate(programs):
            solve.add(Candidate(index=CARRIED_BASE + n, origin="carried", temperature=0.0, seed=None, code=code,
                                tokens=0))

    async def _first_pass(self, solve: Solve, say: Progress) -> bool:
        """One passing program is enough: the programs go to the sandbox lowest energy first (as generated
        without scores), which stops the rest once one passes every public test. Tests of several modes are
        separate sandbox calls, each blind to the others' passes: then one program at a time instead."""
        await self.score(solve)
        order = sorted((c for c in solve.unique() if c.verdict == "untested"),
                       key=lambda c: (c.score is None, c.score or 0.0, c.index))
        if len({t.mode for t in solve.problem.tests}) == 1:
            await self.judge.judge(solve, say, only=order, first_pass=True)
            return any(c.public_ok for c in order)
        for c in order:
            await self.judge.judge(solve, say, only=[c])
            if c.public_ok:
                return True
        return False

    async def score(self, solve: Solve) -> None:
        """The pluggable scorer's energy for each program that has none yet (unless the request turned it off)."""
        if self.scorer is None or not solve.budget.lens:
            return
        pool = [c for c in solve.unique() if c.score is None]
        if not pool or len(solve.unique()) < 2:  # one program: nothing to order
            return
        scores = await self.scorer.score(solve.problem.text, [c.code or "" for c in pool])
        for c, s in zip(pool, scores, strict=True):
            c.score = s
