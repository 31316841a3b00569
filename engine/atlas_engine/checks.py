"""Checks the model writes when the public tests leave a choice, and the clustering they feed (``select.agree``).

- A Python function (CodeT): asserts ``entry(args) == value``; each program's result on every call is run in
  the sandbox after the program, behind a random token, and compared with the expected value.
- A program that reads stdin, in any language (AlphaCode): inputs written out plus a small generator for a
  larger one; every program runs on every input in one sandbox call (``collect_outputs``) and is known by
  what it printed. No expected output exists: programs are only compared with each other.

Either way a program's outputs become a tuple of keys (a digest of the value or the output, or ``!Fault`` for a
crash, a time-out, a memory or output limit) that clustering compares."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from dataclasses import dataclass

from atlas_core.budget import SELF_TEST_TOKENS
from atlas_core.sandbox_api import ExecuteRequest, JudgeRequest
from atlas_engine import prompts
from atlas_engine.calls import ModelCalls
from atlas_engine.problem import EQ_HELPER, Problem
from atlas_engine.pyexpr import closed, split_assert
from atlas_engine.sandbox import SandboxClient, SandboxUnavailable, sandbox_request
from atlas_engine.select import UNKNOWN, Candidate, agree
from atlas_engine.solve import Progress, SelfTest, Solve, TokenBudgetSpent, quiet

MAX_SELF_TESTS = 10
MAX_INPUT_CHARS = 64 * 1024  # a written-out input; a generated one may be larger
MAX_GENERATED_CHARS = 1024 * 1024
GENERATOR_SEEDS = (1, 2)
INPUT_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
INPUT_TAGS = {"", "input", "stdin", "text", "txt", "plaintext", "plain"}
PYTHON_TAGS = {"python", "py", "python3"}

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


@dataclass(frozen=True)
class CallResult:
    shown: str  # the result's repr (cut to 300 characters) or "!Error: message"
    key: str  # what agreement compares: a hash of the full result with tuples as lists, or "!Error"
    ok: bool  # equal to the expected value


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


def parse_inputs(text: str, count: int) -> tuple[list[str], str | None]:
    """The written-out inputs (fenced blocks tagged ``input``, or untagged), distinct, each ending in a newline,
    at most ``count``; and the first Python block, the generator, if any."""
    inputs: list[str] = []
    generator = None
    for m in INPUT_FENCE.finditer(text.replace("\r\n", "\n")):
        tag, body = m.group(1).lower(), m.group(2)
        if tag in PYTHON_TAGS:
            generator = generator or body
        elif tag in INPUT_TAGS and body.strip() and len(body) <= MAX_INPUT_CHARS:
            value = body.strip("\n") + "\n"
            if value not in inputs and len(inputs) < count:
                inputs.append(value)
    return inputs, generator


class Checker:
    def __init__(self, calls: ModelCalls, sandbox: SandboxClient, count: int, test_timeout_s: float) -> None:
        self.calls = calls
        self.sandbox = sandbox
        self.count = count
        self.test_timeout_s = test_timeout_s

    @staticmethod
    def can_check(problem: Problem) -> bool:
        """Python functions are called on inputs; programs of any language read them on stdin. (Functions in
        other languages have no harness.) Not among a project's files: the checks run without them."""
        return not problem.files and (problem.reads_stdin or problem.language == "python")

    def wanted(self, solve: Solve) -> bool:
        """Self-written checks can only help when the public tests leave a choice: no program passes them, or
        several do, and there is more than one program."""
        distinct = solve.unique()
        passing = sum(1 for c in distinct if c.public_ok)
        return self.can_check(solve.problem) and passing != 1 and len(distinct) > 1

    async def write(self, solve: Solve, say: Progress = quiet) -> None:
        problem = solve.problem
        messages = (prompts.test_inputs(problem, self.count) if problem.reads_stdin
                    else prompts.self_tests(problem, self.count))
        try:
            gen = await self.calls.chat(solve, messages, temperature=0.0, seed=solve.seed,
                                        max_tokens=min(solve.budget.max_tokens, SELF_TEST_TOKENS))
        except TokenBudgetSpent:
            return
        if not problem.reads_stdin:
            solve.self_tests = parse_self_tests(gen.text, problem.entry_point or "")
            await say({"stage": "self-tests", "count": len(solve.self_tests),
                       "message": f"the model wrote {len(solve.self_tests)} usable test(s)"})
            return
        inputs, generator = parse_inputs(gen.text, self.count)
        if generator:
            inputs += await self._generated(solve, generator)
        solve.self_tests = [SelfTest("", None, input=text) for text in inputs]
        await say({"stage": "self-tests", "count": len(inputs),
                   "message": f"the model wrote {len(inputs)} test input(s)" + (" (some from its generator)"
                                                                               if generator else "")})

    async def _generated(self, solve: Solve, generator: str) -> list[str]:
        """The generator's output for each seed: an input when it ran cleanly and printed something of a sane
        size (a generator that fails costs its inputs, nothing else)."""
        async def one(seed: int) -> str | None:
            try:
                request = sandbox_request(ExecuteRequest, code=generator, language="python", stdin=f"{seed}\n",
                                timeout=min(10.0, solve.remaining()))
                answer = await self.sandbox.execute(request, solve.id, solve.timeline)
            except SandboxUnavailable:
                return None
            solve.timeline.ran(1)
            out = answer.stdout
            if not answer.success or answer.output_truncated or not out.strip():
                return None
            return out if len(out) <= MAX_GENERATED_CHARS else None

        found = await asyncio.gather(*(one(seed) for seed in GENERATOR_SEEDS))
        return list(dict.fromkeys(text for text in found if text is not None))

    async def run(self, solve: Solve, say: Progress = quiet) -> None:
        """Each program not yet checked runs on every check, then the clusters are formed again. A program the
        sandbox could not run joins no cluster."""
        if not solve.self_tests:
            return
        todo = [c for c in solve.candidates if c.unique and c.outputs is None]
        if todo and solve.problem.reads_stdin:
            await self._run_inputs(solve, todo)
        elif todo:
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
        for c in todo:  # one the sandbox could not run ranks after every program that ran its checks
            if c.outputs is None:
                c.faults = len(solve.self_tests)
        agree(solve.candidates)
        best = max((c.agreement or 0 for c in solve.unique()), default=0)
        await say({"stage": "agreement", "message": f"largest agreement score {best} over "
                                                     f"{len(solve.self_tests)} self-written check(s)"})

    async def _run_inputs(self, solve: Solve, todo: list[Candidate]) -> None:
        """One judge call: every program on every input, outputs collected rather than compared."""
        try:
            request = sandbox_request(
                JudgeRequest, language=solve.problem.language, mode="stdin", collect_outputs=True,
                stop_on_first_failure=False, candidates=[{"id": str(c.index), "code": c.code or ""} for c in todo],
                tests=[{"input": t.input or ""} for t in solve.self_tests],
                limits={"timeout_s": self.test_timeout_s}, deadline_s=min(3600.0, solve.remaining()))
            answer = await self.sandbox.judge(request, solve.id, solve.timeline)
        except SandboxUnavailable:
            return  # no clustering this time; the public tests (if any) still decide
        by_id = {c.index: c for c in todo}
        for r in answer.candidates:
            c = by_id[int(r.id or -1)]
            solve.timeline.ran(len(r.outputs) if r.outputs else 1)
            if r.outputs:
                c.outputs = tuple(o.digest if o.status == "ok" else UNKNOWN if o.status == "Skipped"
                                  else "!" + o.status for o in r.outputs)
            else:  # it did not compile: a fault on every input, and the verdict says why
                c.outputs = tuple("!" + r.verdict for _ in solve.self_tests)
                if c.verdict == "untested":
                    c.verdict = r.verdict

    async def evaluate(self, solve: Solve, code: str, cases: list[tuple[str, str | None]]) -> list[CallResult]:
        """Each call run in the sandbox after the program: what it gave (or ``!Error: message``), a key that
        compares results as the tests do (tuples as lists, the whole value hashed), and whether it equals the
        expected value. Results travel as indexed lines behind a random token, so output the program prints
        itself cannot shift or forge them (it never sees the token: the harness reads it from stdin)."""
        token = secrets.token_hex(8)
        harness = f"{code}\n{EQ_HELPER}\n{HARNESS}\n__atlas_check({cases!r})\n"
        request = sandbox_request(ExecuteRequest, code=harness, language="python", stdin=token + "\n",
                        timeout=min(30.0, 2.0 + len(cases), solve.remaining()))
        answer = await self.sandbox.execute(request, solve.id, solve.timeline)
        solve.timeline.ran(1)
        found: dict[int, CallResult] = {}
        marker = f"\x1e{token}"
        for line in answer.stdout.split("\n"):
            at = line.find(marker)
            if at < 0:
                continue
            try:
                index, shown, key, ok = json.loads(line[at + len(marker):])
                found[int(index)] = CallResult(str(shown), str(key), ok is True)
            except (ValueError, TypeError):
                continue
        missing = "!" + (answer.error_type or "Stopped")
        return [found.get(i, CallResult(missing, missing, False)) for i in range(len(cases))]
