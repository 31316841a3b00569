"""The verified-generation engine: k candidates, judged in the sandbox on the tests a user has, ranked by
agreement on tests the model writes, repaired from their failures, within a budget. One copy of the logic:
rag-api's routes drive it, and the task-worker is meant to drive the same code."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from atlas_rag import prompts
from atlas_rag.extract import COMPLETION_STOPS, add_imports, complete_code, extract_code, normalise, sanitize_python
from atlas_rag.llm import Generation, LLMClient, LLMUnavailable, Message
from atlas_rag.problem import EQ_HELPER, Problem, Test, build_problem, closed, split_assert
from atlas_rag.sandbox import SandboxClient, SandboxUnavailable
from atlas_rag.schemas import CandidateOut, FailureOut, SolveRequest, SolveResult, TestsUsed, Timings, Tokens
from atlas_rag.select import Candidate, Scorer, agree, choose, rank_key
from atlas_rag.timeline import Timeline

log = logging.getLogger("atlas.rag.engine")
Progress = Callable[[dict[str, Any]], Awaitable[None]]
MIN_CALL_TOKENS = 16  # a model call with less room than this is not worth making
CHARS_PER_TOKEN = 3  # a cautious estimate of a prompt's tokens before the server counts them (code: 3-4)
MESSAGE_OVERHEAD = 8  # the chat template's tokens around each message
PromptStyle = Literal["chat", "completion"]
MAX_SELF_TESTS = 10
CARRIED_BASE = 1000  # indices of programs carried over from an earlier attempt (after any new sample)


@dataclass(frozen=True)
class EngineConfig:
    k: int = 5
    max_tokens: int = 512
    repair_rounds: int = 2
    deadline_s: float = 120.0
    self_tests: bool = True
    self_test_count: int = 6
    repair_width: int = 2  # failing candidates repaired per round
    prompt_style: PromptStyle = "chat"
    test_timeout_s: float = 6.0  # per test, as LiveCodeBench's harness


@dataclass(frozen=True)
class SolveBudget:
    """A request's budget with the service's defaults filled in."""

    k: int
    max_tokens: int
    repair_rounds: int
    deadline_s: float
    self_tests: bool



async def _quiet(event: dict[str, Any]) -> None:
    return None


def temperature(index: int) -> float:
    """PLATFORM.md §5 as a schedule over candidates: the first is greedy (it is what k=1 gives), the next four
    sample at 0.6 (k <= 5), further ones at 0.8 (k > 5). It depends on the index alone, so with one
    generation at a time the first k candidates of a larger run are exactly a run with budget k."""
    if index == 0:
        return 0.0
    return 0.6 if index < 5 else 0.8


def problem_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class SelfTest:
    call: str
    expected: str | None


@dataclass(frozen=True)
class CallResult:
    shown: str  # the result's repr (cut to 300 characters) or "!Error: message"
    key: str  # what agreement compares: a hash of the full result with tuples as lists, or "!Error"
    ok: bool  # equal to the expected value


# Runs inside the sandbox after the program. The token comes from stdin, so the program cannot print it.
HARNESS = """
def __atlas_check(__atlas_cases):
    import hashlib, json, sys
    __atlas_mark = "\\x1e" + sys.stdin.readline().strip()
    def __atlas_plain(v):
        if isinstance(v, (list, tuple)):
            return [__atlas_plain(x) for x in v]
        if isinstance(v, dict):
            return {k: __atlas_plain(x) for k, x in v.items()}
        return v
    for __atlas_i, (__atlas_call, __atlas_exp) in enumerate(__atlas_cases):
        try:
            __atlas_v = eval(__atlas_call, globals())
            __atlas_shown = repr(__atlas_v)[:300]
            __atlas_key = hashlib.sha256(repr(__atlas_plain(__atlas_v)).encode()).hexdigest()[:24]
        except BaseException as __atlas_e:
            __atlas_shown = "!" + type(__atlas_e).__name__ + ": " + str(__atlas_e)[:200]
            __atlas_key = "!" + type(__atlas_e).__name__
            __atlas_ok = False
        else:
            try:
                __atlas_ok = __atlas_exp is not None and bool(__atlas_eq(__atlas_v, eval(__atlas_exp, globals())))
            except BaseException:
                __atlas_ok = False
        print("\\n" + __atlas_mark + json.dumps([__atlas_i, __atlas_shown, __atlas_key, __atlas_ok]), flush=True)
"""


@dataclass
class Solve:
    """The state of one solve, readable at any point (the deadline may stop it mid-stage)."""

    id: str
    problem: Problem
    budget: SolveBudget
    seed: int
    timeline: Timeline = field(default_factory=Timeline)
    deadline: float = float("inf")  # time.monotonic() when the budget's wall clock runs out
    candidates: list[Candidate] = field(default_factory=list)
    self_tests: list[SelfTest] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    repair_rounds: int = 0
    heat: float = 0.0  # added to every sample's temperature (the task-worker raises it over attempts)
    stopped: Literal["done", "deadline", "budget"] = "done"
    token_cap: int | None = None  # the most tokens this solve may spend (what the proxy or the worker reserved)
    committed: int = 0  # tokens spent plus the most that the calls in flight may still spend

    def add(self, candidate: Candidate) -> Candidate:
        if candidate.code is not None:
            candidate.key = normalise(candidate.code, self.problem.language)
        self.candidates.append(candidate)
        self.settle()
        return candidate

    def settle(self) -> None:
        """Candidates in index order, the lowest index of each program its original (the others count as its
        copies): parallel generations finish in any order, and the answer must not depend on which came first.
        Judging happens after a whole round is in, so an original never changes once judged."""
        self.candidates.sort(key=lambda c: c.index)
        first: dict[str, Candidate] = {}
        for c in self.candidates:
            c.duplicate_of, c.copies = None, 1
            if c.code is None:
                continue
            if c.key in first:
                c.duplicate_of = first[c.key].index
                first[c.key].copies += c.origin == "sample"  # votes are independent samples, not repairs
            else:
                first[c.key] = c

    def remaining(self) -> float:
        return max(0.5, self.deadline - time.monotonic())

    def count(self, generation: Generation) -> None:
        self.prompt_tokens += generation.prompt_tokens
        self.completion_tokens += generation.completion_tokens

    def allow(self, prompt_chars: int, wanted: int) -> tuple[int, int]:
        """Room for one model call under the token cap: ``(max_tokens to ask for, tokens set aside)``, counting the
        calls already in flight. Raises TokenBudgetSpent when not even a short answer fits."""
        if self.token_cap is None:
            return wanted, 0
        prompt = prompt_chars // CHARS_PER_TOKEN + 1
        room = self.token_cap - self.committed - prompt
        if room < MIN_CALL_TOKENS:
            self.stopped = "budget"
            raise TokenBudgetSpent(f"the solve's token cap of {self.token_cap} is spent")
        allowed = min(wanted, room)
        self.committed += prompt + allowed
        return allowed, prompt + allowed

    def spent(self, set_aside: int, generation: Generation | None) -> None:
        """A call ended: what it set aside gives way to what it really spent."""
        if self.token_cap is not None:
            used = generation.prompt_tokens + generation.completion_tokens if generation else 0
            self.committed += used - set_aside


class TokenBudgetSpent(Exception):
    """The solve may not spend another call's tokens: it ends with what it has (``stopped`` = budget)."""


class Engine:
    def __init__(self, llm: LLMClient, sandbox: SandboxClient, config: EngineConfig,
                 scorer: Scorer | None = None) -> None:
        self.llm = llm
        self.sandbox = sandbox
        self.config = config
        self.scorer = scorer

    def budget(self, request: SolveRequest) -> SolveBudget:
        b, c = request.budget, self.config
        return SolveBudget(k=b.k or c.k, max_tokens=b.max_tokens or c.max_tokens,
                      repair_rounds=c.repair_rounds if b.repair_rounds is None else b.repair_rounds,
                      deadline_s=b.deadline_s or c.deadline_s,
                      self_tests=c.self_tests if b.self_tests is None else b.self_tests)

    def start(self, request: SolveRequest) -> Solve:
        """Parse the request into a solve (ProblemError for tests that cannot run as given)."""
        return Solve(id=uuid.uuid4().hex, problem=build_problem(request), budget=self.budget(request),
                     seed=request.seed if request.seed is not None else problem_seed(request.problem))

    async def solve(self, request: SolveRequest, progress: Progress | None = None) -> tuple[Solve, SolveResult]:
        solve = self.start(request)
        return solve, await self.run(solve, progress)

    async def run(self, solve: Solve, progress: Progress | None = None) -> SolveResult:
        say = progress or _quiet
        solve.deadline = time.monotonic() + solve.budget.deadline_s
        try:
            async with asyncio.timeout(solve.budget.deadline_s):
                await self._stages(solve, say)
        except TimeoutError:
            solve.stopped = "deadline"
            await say({"stage": "deadline", "message": f"deadline of {solve.budget.deadline_s:g}s reached; "
                                                          "choosing from what was checked"})
        return self.result(solve)

    async def _stages(self, solve: Solve, say: Progress) -> None:
        budget = solve.budget
        await say({"stage": "generate", "message": f"generating {budget.k} candidate(s)"})
        await self.generate(solve, budget.k, say)
        await self.judge(solve, say)
        if budget.self_tests and self.wants_self_tests(solve):
            await self.write_self_tests(solve, say)
            await self.run_self_tests(solve, say)
        await self.repair_rounds(solve, budget.repair_rounds, say)
        await self.score(solve)

    def carry(self, solve: Solve, programs: list[str]) -> None:
        """Programs that failed an earlier attempt join this one: they are judged again with the new samples
        (which gives their failures on this attempt's tests), and the repair rounds start from the best of
        them, fed back with what failed."""
        for n, code in enumerate(programs):
            solve.add(Candidate(index=CARRIED_BASE + n, origin="carried", temperature=0.0, seed=None, code=code,
                                tokens=0))

    def wants_self_tests(self, solve: Solve) -> bool:
        """Self-written tests can only help when the public tests leave a choice: no program passes them, or
        several do, and there is more than one program."""
        distinct = [c for c in solve.candidates if c.unique]
        passing = sum(1 for c in distinct if c.public_ok)
        return self.can_agree(solve.problem) and passing != 1 and len(distinct) > 1

    async def repair_rounds(self, solve: Solve, rounds: int, say: Progress = _quiet) -> None:
        """Up to ``rounds`` repair rounds while public tests exist and nothing passes them."""
        for _ in range(rounds):
            if not solve.problem.tests or any(c.public_ok for c in solve.candidates if c.unique):
                return
            if not await self.repair(solve, say):
                return

    # -- generation ---------------------------------------------------------------------------------------

    async def generate(self, solve: Solve, k: int, say: Progress = _quiet) -> None:
        """Candidates ``len(sample candidates) .. k-1``, requested together; each is kept as it arrives, so a
        deadline keeps the finished ones. A failed request costs its candidate, not the solve, unless every
        request failed."""
        start = sum(1 for c in solve.candidates if c.origin == "sample")
        failures: list[LLMUnavailable] = []

        async def one(i: int) -> None:
            temp, seed = min(1.0, round(temperature(i) + solve.heat, 3)), solve.seed + i
            variant = prompts.VARIANTS[i % len(prompts.VARIANTS)]
            try:
                code, gen = await self._sample(solve, prompts.solution(solve.problem, variant), temp, seed)
            except LLMUnavailable as exc:
                failures.append(exc)
                return
            except TokenBudgetSpent:
                return
            c = solve.add(Candidate(index=i, origin="sample", temperature=temp, seed=seed, code=code,
                                    tokens=gen.completion_tokens))
            await say({"stage": "generate", "candidate": c.index, "tokens": c.tokens,
                       "message": f"candidate {c.index + 1}/{k}: " + _describe(c)})

        await asyncio.gather(*(one(i) for i in range(start, k)))
        if failures and len(failures) == k - start:
            raise failures[0]

    @staticmethod
    async def _capped(solve: Solve, prompt_chars: int, wanted: int,
                      call: Callable[[int], Awaitable[Generation]]) -> Generation:
        """One model call, ``call(max_tokens)``, within the solve's token cap; its tokens are counted."""
        limit, aside = solve.allow(prompt_chars, wanted)
        try:
            gen = await call(limit)
        except BaseException:
            solve.spent(aside, None)
            raise
        solve.spent(aside, gen)
        solve.count(gen)
        return gen

    async def _chat(self, solve: Solve, messages: list[Message], *, temperature: float, seed: int | None,
                    max_tokens: int) -> Generation:
        chars = sum(len(m.get("content", "")) + MESSAGE_OVERHEAD * CHARS_PER_TOKEN for m in messages)
        return await self._capped(solve, chars, max_tokens, lambda limit: self.llm.chat(
            messages, temperature=temperature, seed=seed, max_tokens=limit, timeline=solve.timeline))

    async def _sample(self, solve: Solve, messages: list[Message], temp: float, seed: int | None
                      ) -> tuple[str | None, Generation]:
        problem = solve.problem
        code: str | None
        if self.config.prompt_style == "completion":
            prefix = prompts.completion_prefix(problem)
            gen = await self._capped(solve, len(prefix), solve.budget.max_tokens, lambda limit: self.llm.complete(
                prefix, temperature=temp, seed=seed, max_tokens=limit, stop=COMPLETION_STOPS, timeline=solve.timeline))
            code = complete_code(prefix, gen.text)
        else:
            gen = await self._chat(solve, messages, temperature=temp, seed=seed, max_tokens=solve.budget.max_tokens)
            code = extract_code(gen.text, problem.language, problem.entry_point)
        if code is not None and problem.language == "python":
            code = add_imports(sanitize_python(code, problem.reads_stdin, problem.entry_point), problem.text)
        return code, gen

    # -- judging on the public tests -------------------------------------------------------------------------

    async def judge(self, solve: Solve, say: Progress = _quiet) -> None:
        """Judge every program not judged yet on the public tests, in one sandbox call per test mode, each
        candidate stopping at its first failure."""
        problem = solve.problem
        todo = [c for c in solve.candidates if c.unique and c.verdict == "untested"]
        if not todo or not problem.tests:
            return
        groups: dict[str, list[tuple[int, Test]]] = {}
        for j, t in enumerate(problem.tests):
            groups.setdefault(t.mode, []).append((j, t))
        await say({"stage": "verify", "message": f"running {len(todo)} program(s) on {len(problem.tests)} "
                                                  "public test(s)"})
        results = await asyncio.gather(*(self._judge_group(solve, todo, mode, tests)
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

    async def _judge_group(self, solve: Solve, todo: list[Candidate], mode: str, tests: list[tuple[int, Test]]
                           ) -> dict[int, tuple[str, int, dict[str, str | None] | None]]:
        problem = solve.problem
        body: dict[str, Any] = {
            "language": problem.language, "mode": mode, "stop_on_first_failure": True,
            "candidates": [{"id": str(c.index), "code": c.code} for c in todo],
            "limits": {"timeout_s": self.config.test_timeout_s},
            "deadline_s": min(3600.0, solve.remaining()),  # the sandbox stops too when the solve runs out
        }
        if mode == "assert":
            body["tests"] = [{"code": t.code} for _, t in tests]
            if problem.language == "python":
                body["setup"] = EQ_HELPER
        else:
            body["tests"] = [{"input": t.input, "output": t.output} for _, t in tests]
        if mode == "functional":
            body["func_name"] = problem.entry_point
        answer = await self.sandbox.judge(body, solve.id, solve.timeline)
        out: dict[int, tuple[str, int, dict[str, str | None] | None]] = {}
        for r in answer["candidates"]:
            failure = None
            if r.get("first_failure"):
                f = r["first_failure"]
                test = tests[f["test_index"]][1]
                failure = {"test": _shown(test), "expected": f.get("expected") or test.expected,
                           "got": f.get("got"), "error": f.get("error")}
            elif r["verdict"] != "passed":  # it did not compile: no test ran, the compiler's words are the failure
                test = tests[0][1]
                failure = {"test": _shown(test), "expected": test.expected or test.output or None, "got": None,
                           "error": (r.get("compile_output") or r["verdict"])[-2000:]}
            out[int(r["id"])] = (r["verdict"], int(r["tests_passed"]), failure)
        return out

    # -- self-written tests and agreement ------------------------------------------------------------------

    @staticmethod
    def can_agree(problem: Problem) -> bool:
        """Agreement runs the entry point on inputs: Python functions only (programs have no call to make)."""
        return problem.language == "python" and not problem.reads_stdin

    async def write_self_tests(self, solve: Solve, say: Progress = _quiet) -> None:
        problem = solve.problem
        try:
            gen = await self._chat(solve, prompts.self_tests(problem, self.config.self_test_count), temperature=0.0,
                                   seed=solve.seed, max_tokens=min(solve.budget.max_tokens, 512))
        except TokenBudgetSpent:
            return
        solve.self_tests = parse_self_tests(gen.text, problem.entry_point or "")
        await say({"stage": "self-tests", "count": len(solve.self_tests),
                   "message": f"the model wrote {len(solve.self_tests)} usable test(s)"})

    async def run_self_tests(self, solve: Solve, say: Progress = _quiet) -> None:
        """Each program's outputs on the self-written inputs, then the clusters (``select.agree``). A program
        the sandbox could not run joins no cluster."""
        if not solve.self_tests:
            return
        todo = [c for c in solve.candidates if c.unique and c.outputs is None]
        cases = [(solve.problem.call(t.call), t.expected) for t in solve.self_tests]
        runs = await asyncio.gather(*(self.evaluate(solve, c.code or "", cases) for c in todo),
                                    return_exceptions=True)
        for c, results in zip(todo, runs, strict=True):
            if isinstance(results, BaseException):
                if not isinstance(results, SandboxUnavailable):
                    raise results
                continue
            c.outputs = tuple(r.key for r in results)
            c.self_passed = sum(1 for r in results if r.ok)
        agree(solve.candidates)
        best = max((c.agreement or 0 for c in solve.candidates if c.unique), default=0)
        await say({"stage": "agreement", "message": f"largest agreement score {best} over "
                                                     f"{len(solve.self_tests)} self-written test(s)"})

    async def evaluate(self, solve: Solve, code: str, cases: list[tuple[str, str | None]]) -> list[CallResult]:
        """Each call run in the sandbox after the program: what it gave (or ``!Error: message``), a key that
        compares results as the tests do (tuples as lists, the whole value hashed), and whether it equals the
        expected value. Results travel as indexed lines behind a random token, so output the program prints
        itself cannot shift or forge them (it never sees the token: the harness reads it from stdin)."""
        token = secrets.token_hex(8)
        harness = f"{code}\n{EQ_HELPER}\n{HARNESS}\n__atlas_check({cases!r})\n"
        body = {"code": harness, "language": "python", "stdin": token + "\n",
                "timeout": min(30.0, 2.0 + len(cases), solve.remaining())}
        answer = await self.sandbox.execute(body, solve.id, solve.timeline)
        found: dict[int, CallResult] = {}
        marker = f"\x1e{token}"
        for line in (answer.get("stdout") or "").split("\n"):
            at = line.find(marker)
            if at < 0:
                continue
            try:
                index, shown, key, ok = json.loads(line[at + len(marker):])
                found[int(index)] = CallResult(str(shown), str(key), ok is True)
            except (ValueError, TypeError):
                continue
        missing = "!" + (answer.get("error_type") or "Stopped")
        return [found.get(i, CallResult(missing, missing, False)) for i in range(len(cases))]

    # -- repair ------------------------------------------------------------------------------------------

    async def repair(self, solve: Solve, say: Progress = _quiet) -> bool:
        """One round: the best failing programs go back with their first failure; the repairs are judged.
        False when there was nothing left to repair."""
        problem = solve.problem
        if self.config.prompt_style == "completion":
            return False  # a base model cannot follow a repair instruction
        failing = sorted((c for c in solve.candidates if c.unique and not c.repaired and c.failure),
                         key=rank_key)[: self.config.repair_width]
        if not failing:
            return False
        solve.repair_rounds += 1
        await say({"stage": "repair", "round": solve.repair_rounds,
                   "message": f"repair round {solve.repair_rounds}: fixing {len(failing)} program(s)"})
        first_index = max(c.index for c in solve.candidates) + 1

        async def fix(c: Candidate, n: int) -> None:
            c.repaired = True
            failure = dict(c.failure or {})
            test = next((t for t in problem.tests if _shown(t) == failure.get("test")), None)
            if failure.get("got") is None and test is not None and test.call and self.can_agree(problem):
                # An assert only says AssertionError: what the call really gave is what helps a repair.
                got = (await self.evaluate(solve, c.code or "", [(problem.call(test.call), None)]))[0].shown
                failure["got"] = None if got.startswith("!") else got
                failure["error"] = failure.get("error") or (got[1:] if got.startswith("!") else None)
            messages = prompts.repair(problem, c.code or "", failure.get("test") or "", failure.get("expected"),
                                      failure.get("got"), failure.get("error"))
            seed = solve.seed + 1000 * solve.repair_rounds + n
            code, gen = await self._sample(solve, messages, 0.3 if n else 0.0, seed)
            r = solve.add(Candidate(index=first_index + n, origin="repair", temperature=0.3 if n else 0.0,
                                    seed=seed, code=code, tokens=gen.completion_tokens))
            r.extra["repairs"] = c.index
            await say({"stage": "repair", "candidate": r.index, "message": f"repair of candidate {c.index + 1}: "
                                                                          + _describe(r)})

        outcomes = await asyncio.gather(*(fix(c, n) for n, c in enumerate(failing)), return_exceptions=True)
        for outcome in outcomes:  # a repair the model, the sandbox or the token cap did not allow is skipped
            if isinstance(outcome, BaseException) and not isinstance(
                    outcome, LLMUnavailable | SandboxUnavailable | TokenBudgetSpent):
                raise outcome
        await self.judge(solve, say)
        if solve.self_tests:
            await self.run_self_tests(solve, say)
        return True

    async def score(self, solve: Solve) -> None:
        """The pluggable scorer orders what the tests leave tied (the Geometric Lens plugs in here)."""
        if self.scorer is None:
            return
        pool = [c for c in solve.candidates if c.unique]
        if len(pool) < 2:
            return
        scores = await self.scorer.score(solve.problem.text, [c.code or "" for c in pool])
        for c, s in zip(pool, scores, strict=True):
            c.score = s

    # -- the answer -------------------------------------------------------------------------------------------

    def result(self, solve: Solve) -> SolveResult:
        problem = solve.problem
        winner = choose(solve.candidates)
        if winner is None:
            status = "no_code"
        elif not problem.tests:
            status = "unverified"
        else:
            status = "passed" if winner.public_ok else "failed"
        if status == "failed" and solve.stopped == "done":
            solve.stopped = "budget"  # nothing passed and the repair rounds are spent
        times = solve.timeline.totals()
        return SolveResult(
            id=solve.id, code=winner.code if winner else None, language=problem.language,
            entry_point=problem.entry_point, verified=status == "passed", status=status, stopped=solve.stopped,
            summary=summary(solve, winner, status), winner=winner.index if winner else None,
            candidates=[_out(c) for c in solve.candidates],
            tests=TestsUsed(user=problem.count("user"), examples=problem.count("example"),
                            self_written=len(solve.self_tests)),
            repair_rounds=solve.repair_rounds,
            tokens=Tokens(prompt=solve.prompt_tokens, completion=solve.completion_tokens),
            usage={"prompt_tokens": solve.prompt_tokens, "completion_tokens": solve.completion_tokens,
                   "total_tokens": solve.prompt_tokens + solve.completion_tokens},
            timings=Timings(**{k: round(v, 4) for k, v in times.items()}, llm_calls=solve.timeline.calls["llm"],
                            sandbox_calls=solve.timeline.calls["sandbox"]),
        )


def parse_self_tests(text: str, entry: str) -> list[SelfTest]:
    """``assert entry(...) == value`` lines from the model's answer (fenced or not): distinct calls whose call
    and value are closed expressions (``f(n)`` or ``== expected`` naming a variable test nothing)."""
    found: list[SelfTest] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if not line.startswith("assert "):
            continue
        call, expected = split_assert(line)
        call = closed(call, entry) if call else None
        expected = closed(expected, None) if expected else None
        if call and expected and call.startswith(f"{entry}(") and all(t.call != call for t in found):
            found.append(SelfTest(call, expected))
        if len(found) == MAX_SELF_TESTS:
            break
    return found


def summary(solve: Solve, winner: Candidate | None, status: str) -> str:
    problem = solve.problem
    samples = [c for c in solve.candidates if c.origin == "sample"]
    distinct = sum(1 for c in solve.candidates if c.unique)
    passing = sum(1 for c in solve.candidates if c.unique and c.public_ok)
    sources = [f"{n} {what}" for n, what in ((problem.count("user"), "given"),
                                            (problem.count("example"), "from the problem's examples")) if n]
    if winner is None:
        head = "no candidate contained code"
    elif status == "passed":
        head = f"passed all {winner.public_total} public test(s) ({', '.join(sources)})"
    elif status == "failed":
        head = f"NOT verified: passed {winner.public_passed}/{len(problem.tests)} public test(s) ({', '.join(sources)})"
        if winner.failure:
            head += f"; first failure: {winner.failure.get('test')}"
        elif winner.verdict == "untested":
            head += "; not run before the deadline"
    else:
        head = "NOT verified: the request had no tests and the problem no examples"
    parts = [head, f"chosen from {len(samples)} candidate(s), {distinct} distinct, {passing} passing"]
    if solve.self_tests and winner is not None and winner.agreement is not None:
        parts.append(f"{len(solve.self_tests)} self-written test(s), agreement score {winner.agreement}")
    if solve.repair_rounds:
        parts.append(f"{solve.repair_rounds} repair round(s)")
    if solve.stopped != "done":
        parts.append(f"stopped early ({solve.stopped})")
    return "; ".join(parts)


def _shown(test: Test) -> str:
    if test.mode == "assert" and test.call and test.code.startswith("assert __atlas_eq("):
        return f"assert {test.call} == {test.expected}"
    return test.label()


def _describe(c: Candidate) -> str:
    if c.code is None:
        return f"no code ({c.tokens} tokens)"
    if c.duplicate_of is not None:
        return f"same program as candidate {c.duplicate_of + 1} ({c.tokens} tokens)"
    return f"{len(c.code.splitlines())} lines ({c.tokens} tokens)"


def _out(c: Candidate) -> CandidateOut:
    failure = FailureOut(**c.failure) if c.failure else None
    verdict = "no_code" if c.code is None else c.verdict
    return CandidateOut(index=c.index, origin=c.origin, temperature=c.temperature, seed=c.seed, tokens=c.tokens,
                        duplicate_of=c.duplicate_of, verdict=verdict, public_passed=c.public_passed,
                        public_total=c.public_total, self_agreement=c.agreement, self_passed=c.self_passed,
                        score=c.score, failure=failure, code=c.code)
