"""Repair rounds: while public tests exist and nothing passes them, the best failing programs go back to the
model with their first failure (the test, what it should give, what it gave, the error), and the repairs are
judged and checked like any candidate."""

from __future__ import annotations

import asyncio

from atlas_engine import prompts
from atlas_engine.calls import ModelCalls
from atlas_engine.checks import Checker
from atlas_engine.generate import describe
from atlas_engine.judge import PublicJudge, shown
from atlas_engine.llm import LLMUnavailable
from atlas_engine.sandbox import SandboxUnavailable
from atlas_engine.select import Candidate, rank_key
from atlas_engine.solve import Progress, Solve, TokenBudgetSpent, quiet

SKIPPED = (LLMUnavailable, SandboxUnavailable, TokenBudgetSpent)  # a repair these stop is skipped, not fatal


class Repairer:
    def __init__(self, calls: ModelCalls, judge: PublicJudge, checker: Checker, width: int) -> None:
        self.calls = calls
        self.judge = judge
        self.checker = checker
        self.width = width  # failing programs repaired per round

    async def rounds(self, solve: Solve, rounds: int, say: Progress = quiet) -> None:
        """Up to ``rounds`` repair rounds while public tests exist and nothing passes them."""
        for _ in range(rounds):
            if not solve.problem.tests or any(c.public_ok for c in solve.unique()):
                return
            if not await self.repair(solve, say):
                return

    async def repair(self, solve: Solve, say: Progress = quiet) -> bool:
        """One round; False when there was nothing left to repair."""
        if self.calls.prompt_style == "completion":
            return False  # a base model cannot follow a repair instruction
        failing = sorted((c for c in solve.candidates if c.unique and not c.repaired and c.failure),
                         key=rank_key)[: self.width]
        if not failing:
            return False
        solve.repair_rounds += 1
        await say({"stage": "repair", "round": solve.repair_rounds,
                   "message": f"repair round {solve.repair_rounds}: fixing {len(failing)} program(s)"})
        first_index = max(c.index for c in solve.candidates) + 1
        outcomes = await asyncio.gather(*(self._fix(solve, c, first_index + n, n, say)
                                          for n, c in enumerate(failing)), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, SKIPPED):
                raise outcome
        await self.judge.judge(solve, say)
        if solve.self_tests:
            await self.checker.run(solve, say)
        return True

    async def _fix(self, solve: Solve, c: Candidate, index: int, n: int, say: Progress) -> None:
        problem = solve.problem
        c.repaired = True
        failure = dict(c.failure or {})
        test = next((t for t in problem.tests if shown(t) == failure.get("test")), None)
        if failure.get("got") is None and test is not None and test.call and not problem.reads_stdin \
                and problem.language == "python":
            # An assert only says AssertionError: what the call really gave is what helps a repair.
            got = (await self.checker.evaluate(solve, c.code or "", [(problem.call(test.call), None)]))[0].shown
            failure["got"] = None if got.startswith("!") else got
            failure["error"] = failure.get("error") or (got[1:] if got.startswith("!") else None)
        messages = prompts.repair(problem, c.code or "", failure.get("test") or "", failure.get("expected"),
                                  failure.get("got"), failure.get("error"))
        seed = solve.seed + 1000 * solve.repair_rounds + n
        temp = 0.3 if n else 0.0
        code, gen = await self.calls.sample(solve, messages, temp, seed)
        r = solve.add(Candidate(index=index, origin="repair", temperature=temp, seed=seed, code=code,
                                tokens=gen.completion_tokens))
        r.extra["repairs"] = c.index
        await say({"stage": "repair", "candidate": r.index,
                   "message": f"repair of candidate {c.index + 1}: " + describe(r)})
