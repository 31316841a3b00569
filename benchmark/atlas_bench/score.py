"""Scoring one answer on a problem's hidden tests, once, in the sandbox (its ``/judge``, through atlas-engine's
``SandboxClient`` and its retry policy), with LiveCodeBench's rules: 6 s per test, stop at the first failure,
stdin outputs compared line by line after strip with numbers as decimals, functional results with ``==`` after
tuples become lists. A program passes only if every test passes. "The sandbox could not judge" is an error, never
a verdict."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from atlas_bench.problems import BenchProblem
from atlas_core.sandbox_api import JudgeRequest
from atlas_engine import SandboxClient, SandboxRefused, SandboxUnavailable, sandbox_request

TOKEN_TTL_S = 120  # a judge call's token is checked on arrival; minted only once a slot is free, 120 s is ample
SLACK_S = 30.0  # on top of a judge call's deadline: the sandbox answers at its deadline, plus the way back


class ScorerUnavailable(Exception):
    """The sandbox did not judge (down, refused, overloaded): the task is not scored, and is retried later."""


@dataclass(frozen=True)
class Score:
    passed: bool
    verdict: str  # the sandbox's: passed, TestFailure, RuntimeError, Timeout, CompileError, ...
    tests_passed: int
    tests_total: int
    failure: dict[str, Any] | None = None


class HiddenTestScorer:
    """Usage::

        scorer = HiddenTestScorer(http, "http://127.0.0.1:8020", signing_secret)
        score = await scorer.score(problem, code)
    """

    def __init__(self, http: httpx.AsyncClient, sandbox_url: str, signing_secret: str, *, parallel: int = 4) -> None:
        self._sandbox = SandboxClient(http, sandbox_url, signing_secret, issuer="atlas-bench", parallel=parallel,
                                      token_ttl_s=TOKEN_TTL_S)

    async def score(self, problem: BenchProblem, code: str | None) -> Score:
        return (await self.score_many(problem, [code]))[0]

    async def score_many(self, problem: BenchProblem, codes: list[str | None]) -> list[Score]:
        """Each program's score, in order. Each distinct program is judged once, in its own sandbox call (so one
        slow program cannot run another out of the call's deadline), the calls concurrently."""
        hidden = problem.hidden
        distinct = list(dict.fromkeys(c for c in codes if c and c.strip()))
        judged = await asyncio.gather(*(self._judge(problem, code) for code in distinct))
        scores = dict(zip(distinct, judged, strict=True))
        return [scores[c] if c in scores else Score(False, "no_code", 0, len(hidden.tests)) for c in codes]

    async def _judge(self, problem: BenchProblem, code: str) -> Score:
        hidden = problem.hidden
        deadline_s = min(3600.0, 60.0 + hidden.timeout_s * len(hidden.tests))
        try:
            request = sandbox_request(
                JudgeRequest, language=problem.language, mode=hidden.mode,
                candidates=[{"id": "answer", "code": code}], tests=hidden.tests, stop_on_first_failure=True,
                limits={"timeout_s": hidden.timeout_s}, deadline_s=deadline_s,
                setup=hidden.setup if hidden.mode == "assert" else "",
                func_name=hidden.func_name if hidden.mode == "functional" else None)
        except SandboxRefused:  # the answer itself cannot run (past the size bound, not valid text): it fails
            return Score(False, "Refused", 0, len(hidden.tests))
        try:
            judged = await self._sandbox.judge(request, problem.id, timeout_s=deadline_s + SLACK_S)
        except SandboxUnavailable as exc:  # SandboxRefused included: either way no verdict on the program
            raise ScorerUnavailable(str(exc)) from None
        if not judged.candidates:
            raise ScorerUnavailable(f"the sandbox answered a result without a verdict for {problem.id}")
        result = judged.candidates[0]
        if judged.deadline_hit or result.verdict == "Skipped":
            # tests left unrun are no verdict on the program: the task is retried, not failed
            raise ScorerUnavailable(f"the sandbox ran out of its deadline judging {problem.id}")
        failure = result.first_failure.model_dump() if result.first_failure else None
        return Score(result.verdict == "passed", result.verdict, result.tests_passed, result.tests_total, failure)
