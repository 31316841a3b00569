"""Judging candidates on the public tests (the user's and the problem's examples) in the sandbox: one call per
test mode, every candidate stopping at its first failure, whose test, expected value, output and error are kept
for the answer and for repair."""

from __future__ import annotations

import asyncio

from atlas_core.sandbox_api import JudgeRequest
from atlas_engine.problem import EQ_HELPER, Mode, Test
from atlas_engine.sandbox import SandboxClient, sandbox_request
from atlas_engine.select import Candidate
from atlas_engine.solve import Progress, Solve, quiet

Outcome = tuple[str, int, dict[str, str | None] | None]  # verdict, tests passed, the first failure


def shown(test: Test) -> str:
    """A test as the answer and the repair prompt show it."""
    if test.mode == "assert" and test.call and test.code.startswith("assert __atlas_eq("):
        return f"assert {test.call} == {test.expected}"
    return test.label()


class PublicJudge:
    def __init__(self, sandbox: SandboxClient, test_timeout_s: float) -> None:
        self.sandbox = sandbox
        self.test_timeout_s = test_timeout_s

    async def judge(self, solve: Solve, say: Progress = quiet, only: list[Candidate] | None = None,
                    first_pass: bool = False) -> None:
        """Judge every program not judged yet (or ``only`` these, in this order) on the public tests.
        ``first_pass``: one passing program is enough; the sandbox stops the others once one passes (they are
        ``Skipped``), and takes them in the order given, so the likeliest first saves the most runs."""
        problem = solve.problem
        todo = only if only is not None else [c for c in solve.candidates if c.unique and c.verdict == "untested"]
        if not todo or not problem.tests:
            return
        groups: dict[Mode, list[tuple[int, Test]]] = {}
        for j, t in enumerate(problem.tests):
            groups.setdefault(t.mode, []).append((j, t))
        await say({"stage": "verify", "message": f"running {len(todo)} program(s) on {len(problem.tests)} "
                                                  "public test(s)"})
        results = await asyncio.gather(*(self._group(solve, todo, mode, tests, first_pass)
                                         for mode, tests in groups.items()), return_exceptions=True)
        for outcome in results:
            if isinstance(outcome, BaseException):
                raise outcome  # the sandbox failed: a verdict on nothing
        for c in todo:
            c.public_total = len(problem.tests)
            c.public_passed = 0
            c.verdict = "passed"
            for group in results:
                assert not isinstance(group, BaseException)
                verdict, passed, failure = group[c.index]
                c.public_passed += passed
                if verdict != "passed" and c.verdict == "passed":
                    c.verdict, c.failure = verdict, failure
        passing = sum(1 for c in todo if c.public_ok)
        await say({"stage": "verify", "passing": passing,
                   "message": f"{passing} of {len(todo)} program(s) pass every public test"})

    async def _group(self, solve: Solve, todo: list[Candidate], mode: Mode, tests: list[tuple[int, Test]],
                     first_pass: bool = False) -> dict[int, Outcome]:
        problem = solve.problem
        cases = [{"code": t.code} if mode in ("assert", "pytest") else {"input": t.input, "output": t.output}
                 for _, t in tests]
        request = sandbox_request(
            JudgeRequest, language=problem.language, mode=mode, stop_on_first_failure=True,
            stop_on_first_pass=first_pass,
            candidates=[{"id": str(c.index), "code": c.code or ""} for c in todo], tests=cases,
            setup=EQ_HELPER if mode == "assert" and problem.language == "python" else "",
            func_name=problem.entry_point if mode == "functional" else None,
            limits={"timeout_s": self.test_timeout_s},
            deadline_s=min(3600.0, solve.remaining()),  # the sandbox stops too when the solve runs out
            files=problem.files or None,
        )
        answer = await self.sandbox.judge(request, solve.id, solve.timeline)
        out: dict[int, Outcome] = {}
        for r in answer.candidates:
            # a compile failure ran the compiler (one run); a candidate stopped by another's pass ran nothing
            solve.timeline.ran(r.tests_run or (0 if r.verdict == "Skipped" else 1))
            failure = None
            if r.first_failure is not None:
                f = r.first_failure
                test = tests[f.test_index][1]
                failure = {"test": shown(test), "expected": f.expected or test.expected, "got": f.got,
                           "error": f.error}
            elif r.verdict not in ("passed", "Skipped"):  # it did not compile: the compiler's words are the failure
                test = tests[0][1]
                failure = {"test": shown(test), "expected": test.expected or test.output or None, "got": None,
                           "error": (r.compile_output or r.verdict)[-2000:]}
            out[int(r.id or -1)] = (r.verdict, r.tests_passed, failure)
        return out
