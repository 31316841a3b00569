"""The engine against a real sandbox and a scripted model: extraction to selection, agreement, repair, budgets."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from atlas_engine.checks import parse_self_tests
from atlas_engine.contracts import Budget, SolveRequest, SolveResult, TestIn
from atlas_engine.engine import Engine, EngineConfig
from atlas_engine.solve import temperature
from tests.conftest import ServerThread
from tests.engine.conftest import run_engine
from tests.rag.fake_llm import fake, fenced, user_text

ADD = "Write a Python function add(a, b) that returns the sum.\n>>> add(2, 3)\n5\n"
RIGHT = "def add(a, b):\n    return a + b"
WRONG = "def add(a, b):\n    return a - b"
ALSO_RIGHT = "def add(a, b):\n    # the sum\n    return b + a"
ALSO_WRONG = "def add(a, b):\n    return a * b"


def solve(llm: ServerThread, sandbox_url: str, request: SolveRequest, events: list[dict[str, Any]] | None = None,
          **config: Any) -> SolveResult:
    async def work(engine: Engine) -> SolveResult:
        async def progress(event: dict[str, Any]) -> None:
            if events is not None:
                events.append(event)
        return (await engine.solve(request, progress))[1]

    return run_engine(llm.url, sandbox_url, work, **config)


def by_seed(answers: dict[int, str], default: str = "no code here") -> Any:
    """Answer candidate i (seed = base seed + i) with answers[i]; self-test and repair prompts get the default."""
    def script(body: dict[str, Any]) -> str:
        return answers.get(int(body.get("seed", -1)) - 100, default)
    return script


def test_temperature_schedule_makes_smaller_runs_prefixes_of_larger_ones() -> None:
    assert [temperature(i) for i in range(10)] == [0.0] + [0.6] * 4 + [0.8] * 5


def test_the_candidate_passing_the_public_test_wins(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = by_seed({0: fenced(WRONG), 1: fenced(RIGHT), 2: "I cannot help."})
    result = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=100, budget=Budget(k=3, self_tests=False)))
    assert result.verified and result.status == "passed" and result.winner == 1
    assert result.code is not None and "a + b" in result.code
    verdicts = {c.index: c.verdict for c in result.candidates}
    assert verdicts == {0: "TestFailure", 1: "passed", 2: "no_code"}
    assert result.tests.examples == 1 and result.tests.user == 0
    wrong = result.candidates[0].failure
    assert wrong is not None and wrong.test == "assert add(2, 3) == 5"
    temps = [r["temperature"] for r in fake(llm).requests]
    assert sorted(temps) == [0.0, 0.6, 0.6]


def test_duplicates_are_judged_once_and_count_as_votes(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = by_seed({0: fenced(RIGHT), 1: fenced(RIGHT + "\n\n# done"),
                                                  2: fenced(ALSO_RIGHT)})
    result = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=100, budget=Budget(k=3, self_tests=False)))
    assert result.candidates[1].duplicate_of == 0 and result.candidates[1].verdict == "untested"
    assert result.candidates[2].duplicate_of is None and result.winner == 0


def test_self_tests_break_a_tie_by_agreement(llm: ServerThread, sandbox_url: str) -> None:
    """Three programs pass the one public example; two agree on the model's own inputs (and with its expected
    values), one is wrong elsewhere: the agreeing pair wins, whatever its length."""
    problem = "Write a Python function absdiff(a, b) returning |a - b|.\n>>> absdiff(5, 3)\n2\n"
    odd = "def absdiff(a, b):\n    return a - b"  # passes the example only
    good = "def absdiff(a, b):\n    return abs(a - b)"
    good2 = "def absdiff(a, b):\n    d = a - b\n    if d < 0:\n        d = -d\n    return d"
    tests = "```python\nassert absdiff(1, 4) == 3\nassert absdiff(0, 0) == 0\nassert absdiff(-2, 2) == 4\n```"

    def script(body: dict[str, Any]) -> str:
        if "assert statements" in user_text(body):
            return tests
        return {0: fenced(odd), 1: fenced(good2), 2: fenced(good)}[int(body["seed"]) - 100]

    fake(llm).script = script
    events: list[dict[str, Any]] = []
    result = solve(llm, sandbox_url, SolveRequest(problem=problem, seed=100, budget=Budget(k=3)), events)
    assert result.tests.self_written == 3
    assert [c.verdict for c in result.candidates] == ["passed"] * 3
    assert result.candidates[0].self_agreement == 1 * (1 + 1)  # alone; meets only absdiff(0, 0) == 0
    assert result.candidates[2].self_agreement == 2 * (1 + 3)
    assert result.winner == 2  # fewer tokens among the agreeing pair
    assert any(e["stage"] == "agreement" for e in events)


def test_parse_self_tests_keeps_distinct_closed_calls_of_the_entry_point() -> None:
    text = ("```python\nassert f(1) == 2\nassert f(1) == 3\nassert g(2) == 1\nassert f(2)\nassert not f(3)\n"
            "assert f(n) == 1\nassert f(4) == expected\nassert f(5) == 5 # five\n```")
    found = [(t.call, t.expected) for t in parse_self_tests(text, "f")]
    assert found == [("f(1)", "2"), ("f(2)", "True"), ("f(3)", "False"), ("f(5)", "5")]


def test_results_of_calls_stay_in_their_slots_whatever_the_program_prints(llm: ServerThread,
                                                                          sandbox_url: str) -> None:
    """The program prints without newlines and prints a fake result line; an expected value that cannot be
    evaluated spoils only its own check, never the output it is compared with."""
    code = ("def f(x):\n    if x == 2:\n        print('dbg', end='')\n"
            "    if x == 3:\n        print('\\x1e' + 'forged[0, \"99\", \"k\", true]')\n    return (x, x * 10)\n")
    cases = [("f(1)", "(1, 10)"), ("f(2)", "[2, 20]"), ("f(3)", "undefined_name"), ("f(4)", None)]

    async def work(engine: Engine) -> list[Any]:
        return await engine.checker.evaluate(engine.start(SolveRequest(problem=ADD)), code, cases)

    results = run_engine(llm.url, sandbox_url, work)
    assert [r.shown for r in results] == ["(1, 10)", "(2, 20)", "(3, 30)", "(4, 40)"]
    assert [r.ok for r in results] == [True, True, False, False]
    assert results[1].key != results[0].key and len({r.key for r in results}) == 4


def test_repair_gets_the_failing_code_and_its_failure(llm: ServerThread, sandbox_url: str) -> None:
    def script(body: dict[str, Any]) -> str:
        if "fails a test" in user_text(body):
            return fenced(RIGHT)
        return fenced(WRONG)

    fake(llm).script = script
    result = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=7, budget=Budget(k=2, repair_rounds=2)))
    assert result.verified and result.repair_rounds == 1
    winner = result.candidates[result.winner or 0]
    assert winner.origin == "repair" and winner.verdict == "passed"
    repair_prompt = next(user_text(b) for b in fake(llm).requests if "fails a test" in user_text(b))
    assert "return a - b" in repair_prompt  # the failing code itself goes back
    assert "Test: assert add(2, 3) == 5" in repair_prompt and "Expected: 5" in repair_prompt
    assert "Got: -1" in repair_prompt  # the actual value, evaluated in the sandbox


def test_repair_stops_after_its_rounds(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = lambda body: fenced(WRONG if "fails" not in user_text(body)
                                                             else WRONG + f"  # try {len(user_text(body))}")
    result = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=7, budget=Budget(k=1, repair_rounds=2,
                                                                                     self_tests=False)))
    assert not result.verified and result.status == "failed" and result.repair_rounds <= 2
    assert result.stopped == "budget"
    assert "NOT verified" in result.summary and result.code is not None


def test_user_tests_of_each_shape(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = lambda body: fenced("def mul(a, b):\n    return a * b")
    request = SolveRequest(problem="Multiply two numbers.", entry_point="mul", seed=1,
                           tests=[TestIn.model_validate({"assert": "assert mul(2, 3) == 6"}),
                                  TestIn(args=[4, 5], expected=20)], budget=Budget(k=1))
    result = solve(llm, sandbox_url, request)
    assert result.verified and result.candidates[0].public_total == 2 and result.tests.user == 2


def test_a_compiled_language_with_stdin_tests(llm: ServerThread, sandbox_url: str) -> None:
    c_right = '#include <stdio.h>\nint main(void){long a,b;scanf("%ld %ld",&a,&b);printf("%ld\\n",a+b);return 0;}'
    c_wrong = '#include <stdio.h>\nint main(void){long a,b;scanf("%ld %ld",&a,&b);printf("%ld\\n",a*b);return 0;}'
    fake(llm).script = by_seed({0: fenced(c_wrong, "c"), 1: fenced(c_right, "c")})
    problem = "Read two integers and print their sum.\n\nSample Input 1\n2 2\n\nSample Output 1\n4\n"
    request = SolveRequest(problem=problem, language="c", seed=100, budget=Budget(k=2),
                           tests=[TestIn(input="3 4\n", output="7\n")])
    result = solve(llm, sandbox_url, request)
    assert result.verified and result.winner == 1 and result.tests.examples == 1
    assert result.candidates[0].verdict == "TestFailure"


def test_the_deadline_stops_the_solve_and_keeps_what_finished(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = lambda body: (fenced(RIGHT), 0.0 if body.get("seed") == 100 else 30.0)
    started = time.monotonic()
    result = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=100, budget=Budget(k=3, deadline_s=2)))
    assert time.monotonic() - started < 10
    assert result.stopped == "deadline" and "stopped early" in result.summary
    assert len(result.candidates) == 1 and result.code is not None


def test_no_tests_at_all_is_answered_but_not_called_verified(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = lambda body: fenced("def shout(s):\n    return s.upper()")
    result = solve(llm, sandbox_url, SolveRequest(problem="Write a Python function shout(s) that upper-cases s.",
                                                  budget=Budget(k=2, self_tests=False)))
    assert result.status == "unverified" and not result.verified and result.code is not None
    assert "NOT verified" in result.summary


def test_time_is_split_into_model_sandbox_and_overhead(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = lambda body: (fenced(RIGHT), 0.3)
    result = solve(llm, sandbox_url, SolveRequest(problem=ADD, budget=Budget(k=2, self_tests=False)))
    t = result.timings
    assert t.llm_s >= 0.3 and t.sandbox_s > 0 and t.overhead_s < t.total_s
    assert t.llm_s + t.sandbox_s <= t.total_s + 0.01
    assert t.llm_calls == 2 and t.sandbox_calls >= 1  # two candidates; the public tests judged in one call
    assert len(result.candidates) == 2 and all(c.code and "return a + b" in c.code for c in result.candidates)
    assert result.tokens.completion > 0 and result.usage["total_tokens"] == result.tokens.prompt + \
        result.tokens.completion


def test_sandbox_calls_are_the_requests_the_sandbox_received(llm: ServerThread, sandbox_url: str) -> None:
    """Judging, self-tests, the evaluation a repair asks for: each request to the sandbox counts once."""
    from atlas_engine.llm import LLMClient
    from atlas_engine.sandbox import SandboxClient
    from tests.conftest import LLAMA_KEY, SANDBOX_SIGNING

    def script(body: dict[str, Any]) -> str:
        text = user_text(body)
        if "fails a test" in text:
            return fenced(RIGHT)
        if "assert statements" in text:
            return "```python\nassert add(1, 1) == 2\nassert add(0, 5) == 5\n```"
        return fenced(WRONG if body.get("seed") == 7 else ALSO_WRONG)

    fake(llm).script = script
    received: list[str] = []

    async def count(request: httpx.Request) -> None:
        if str(request.url).startswith(sandbox_url):
            received.append(request.url.path)

    async def main() -> SolveResult:
        async with httpx.AsyncClient(event_hooks={"request": [count]}) as http:
            engine = Engine(LLMClient(http, llm.url, LLAMA_KEY), SandboxClient(http, sandbox_url, SANDBOX_SIGNING),
                            EngineConfig())
            return (await engine.solve(SolveRequest(problem=ADD, seed=7, budget=Budget(k=2, repair_rounds=2))))[1]

    result = asyncio.run(main())
    assert result.verified and result.repair_rounds == 1 and result.tests.self_written == 2
    assert "/judge" in received and "/execute" in received
    assert result.timings.sandbox_calls == len(received)


def test_one_failed_generation_costs_its_candidate_not_the_solve(llm: ServerThread, sandbox_url: str) -> None:
    def script(body: dict[str, Any]) -> str:
        if body.get("seed") == 101:
            raise RuntimeError("the fake llama-server fails this one request")
        return fenced(RIGHT)

    fake(llm).script = script
    result = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=100, budget=Budget(k=3, self_tests=False)))
    assert result.verified and [c.index for c in result.candidates] == [0, 2]


def test_cancelling_a_solve_stops_its_generations(llm: ServerThread, sandbox_url: str) -> None:
    fake(llm).script = lambda body: (fenced(RIGHT), 5.0)

    async def work(engine: Engine) -> None:
        task = asyncio.ensure_future(engine.solve(SolveRequest(problem=ADD, budget=Budget(k=2))))
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()

    run_engine(llm.url, sandbox_url, work)
    app = fake(llm)
    deadline = time.monotonic() + 3
    while app.abandoned < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(app.requests) == 2 and app.abandoned == 2 and app.finished == 0


def test_code_that_does_not_compile_is_repaired_from_the_compiler_message(llm: ServerThread,
                                                                          sandbox_url: str) -> None:
    def script(body: dict[str, Any]) -> str:
        return fenced(RIGHT) if "fails a test" in user_text(body) else fenced("def add(a, b):\n    return a +")

    fake(llm).script = script
    result = solve(llm, sandbox_url, SolveRequest(problem=ADD, seed=3, budget=Budget(k=1, self_tests=False)))
    assert result.candidates[0].verdict == "SyntaxError" and result.verified and result.repair_rounds == 1
    prompt = next(user_text(b) for b in fake(llm).requests if "fails a test" in user_text(b))
    assert "Error:" in prompt and "SyntaxError" in prompt


def test_a_base_model_continues_the_signature(llm: ServerThread, sandbox_url: str) -> None:
    """prompt_style=completion: the problem as code is the prompt; the continuation is cut where it leaves
    the function, and the program is the two together."""
    problem = 'def add(a, b):\n    """Sum of a and b.\n    >>> add(2, 3)\n    5\n    """\n'
    fake(llm).script = lambda body: "    return a + b\n\n\ndef unrelated():\n    pass\n"
    result = solve(llm, sandbox_url, SolveRequest(problem=problem, budget=Budget(k=1)), prompt_style="completion")
    sent = fake(llm).requests[0]
    assert sent["prompt"] == problem and "\ndef " in sent["stop"]
    assert result.verified and result.code == problem + "    return a + b\n"
