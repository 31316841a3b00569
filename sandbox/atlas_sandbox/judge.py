"""``POST /judge``: many candidates against many tests in one call, with early exits, a deadline, a verdict
cache, and (``collect_outputs``) each test's output digest instead of a comparison."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
import time
from typing import TYPE_CHECKING

from atlas_core.sandbox_api import CandidateResult, Failure, JudgeRequest, JudgeResponse, TestOutput
from atlas_sandbox import programs
from atlas_sandbox.files import check_names
from atlas_sandbox.judge_tests import JudgeCall, run_tests, stdin_batch, test_files
from atlas_sandbox.languages import Toolchain
from atlas_sandbox.limits import Limits
from atlas_sandbox.outcomes import InvalidRun, RunOutcome, cut

if TYPE_CHECKING:
    from atlas_sandbox.executor import Executor

CACHEABLE = {"passed", "TestFailure", "CompileError", "SyntaxError", "RuntimeError", "MemoryLimit", "OutputLimit"}
MODES_BY_LANGUAGE = {"functional": {"python"}, "pytest": {"python"}, "assert": {"python", "javascript"}}
COLLECTING_MODES = ("stdin", "functional")  # the modes whose tests have an output to collect
LOAD_DEPENDENT = ("Timeout", "Skipped")  # collected statuses that a busier or calmer machine could change


def check(ex: Executor, req: JudgeRequest) -> Toolchain:
    """The toolchain of the request's language, once the request is known to be runnable (else InvalidRun)."""
    tc = ex.toolchain(req.language)
    allowed = MODES_BY_LANGUAGE.get(req.mode)
    if allowed is not None and tc.language.name not in allowed:
        raise InvalidRun(f"mode: {req.mode} mode supports {', '.join(sorted(allowed))}, not "
                         f"{tc.language.name}; use stdin mode")
    if req.mode == "functional" and not req.func_name:
        raise InvalidRun("func_name: functional mode needs the name of the function to call")
    if req.mode in ("assert", "pytest") and not all(t.code for t in req.tests):
        raise InvalidRun(f"tests: every test of {req.mode} mode needs 'code'")
    if req.collect_outputs and req.mode not in COLLECTING_MODES:
        raise InvalidRun(f"collect_outputs: {req.mode} mode has no output to collect; use stdin or functional "
                         "mode")
    if req.files:
        check_names(req.files)
    return tc


def cache_key(req: JudgeRequest, code: str, limits: Limits, window: int) -> str:
    # window: a stdin batch's programs share one cgroup sized by it, so memory verdicts depend on it
    parts = [code, req.language, req.mode, req.setup, req.func_name, req.stop_on_first_failure,
             [t.model_dump() for t in req.tests], req.files, limits.__dict__, window]
    if req.collect_outputs:  # a result with outputs; keys of requests without them stay as they were
        parts.append("collect_outputs")
    blob = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


async def judge(ex: Executor, req: JudgeRequest, limits: Limits) -> JudgeResponse:
    tc = check(ex, req)
    started = time.monotonic()
    budget = min(req.deadline_s or ex.settings.sandbox_deadline_s, ex.settings.sandbox_deadline_s)
    # collecting outputs runs every test of every candidate: a pass stops nothing
    stop_on_pass = req.stop_on_first_pass and not req.collect_outputs
    call = JudgeCall(req=req, tc=tc, limits=limits, deadline=started + budget,
                     window=max(1, math.ceil(ex.workers / len(req.candidates))),
                     passed_event=asyncio.Event() if stop_on_pass else None, stop=threading.Event())
    tasks = [asyncio.create_task(_candidate(ex, call, i, c.id, c.code)) for i, c in enumerate(req.candidates)]
    try:
        results = list(await asyncio.gather(*tasks))
    except BaseException:
        call.stop.set()  # running batches end now, not at their budget
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    # collecting outputs compares nothing, so nothing passed
    first = None if req.collect_outputs else next((r.index for r in results if r.passed), None)
    hit = time.monotonic() >= call.deadline and any(r.verdict == "Skipped" for r in results)
    return JudgeResponse(candidates=results, first_passing=first, deadline_hit=hit,
                         elapsed_ms=round((time.monotonic() - started) * 1000, 3))


def _passed(call: JudgeCall) -> None:
    if call.passed_event is not None:
        call.passed_event.set()
        call.stop.set()


async def _candidate(ex: Executor, call: JudgeCall, index: int, cid: str | None, code: str) -> CandidateResult:
    req, tc = call.req, call.tc
    key = cache_key(req, code, call.limits, call.window) if ex.settings.sandbox_cache_entries else ""
    if key and key in ex.cache:
        ex.cache.move_to_end(key)
        cached = ex.cache[key].model_copy(update={"index": index, "id": cid, "cached": True})
        if cached.passed:
            _passed(call)
        return cached
    started = time.monotonic()
    token = programs.nonce()
    d = ex.workdir(tc, code, test_files(req, code, ex.stdin_files, tc.language.name), req.files)
    try:
        err, output = await ex.compile(tc, d, call.deadline - time.monotonic())
        if err is not None:
            result = CandidateResult(index=index, id=cid, verdict=err, passed=False, tests_passed=0, tests_run=0,
                                     tests_total=len(req.tests), compile_output=output,
                                     time_ms=round((time.monotonic() - started) * 1000, 3),
                                     outputs=[] if req.collect_outputs else None)
        else:
            if req.mode == "stdin":
                outcomes = await stdin_batch(ex, call, d)
            else:
                outcomes = await run_tests(ex, call, d, token)
            result = verdict(index, cid, req, outcomes, started)
    finally:
        ex.dirs.remove(d)
    if result.passed:
        _passed(call)
    if key and result.verdict in CACHEABLE and not any(o.status in LOAD_DEPENDENT for o in result.outputs or []):
        ex.cache[key] = result
        while len(ex.cache) > ex.settings.sandbox_cache_entries:
            ex.cache.popitem(last=False)
    return result


def verdict(index: int, cid: str | None, req: JudgeRequest, outcomes: dict[int, RunOutcome],
            started: float) -> CandidateResult:
    """A candidate's result from its tests' outcomes: the first failing test's error, else passed, else (tests
    left unrun by the deadline or a pass elsewhere) Skipped."""
    ran = {j: o for j, o in outcomes.items() if not o.skipped}
    failures = sorted(j for j, o in ran.items() if o.error_type is not None)
    total = len(req.tests)
    passed_count = sum(1 for o in ran.values() if o.error_type is None)
    failure = None
    if failures:
        j = failures[0]
        o = ran[j]
        test = req.tests[j]
        io_mode = req.mode in ("stdin", "functional")
        shown_in, t1 = cut(test.input if io_mode else test.code)
        expected, t2 = cut(test.output if io_mode and not req.collect_outputs else None)
        got, t3 = cut(o.got)
        error, t4 = cut(o.error)
        failure = Failure(test_index=j, input=shown_in, expected=expected, got=got, error=error,
                          truncated=t1 or t2 or t3 or t4)
        given = o.error_type
    elif passed_count == total:
        given = "passed"
    else:
        given = "Skipped"
    peaks = [o.peak_kb for o in ran.values() if o.peak_kb is not None]
    return CandidateResult(
        index=index, id=cid, verdict=given, passed=given == "passed", tests_passed=passed_count,
        tests_run=len(ran), tests_total=total, first_failure=failure,
        time_ms=round((time.monotonic() - started) * 1000, 3), peak_memory_kb=max(peaks) if peaks else None,
        outputs=_outputs(total, ran) if req.collect_outputs else None,
    )


def _outputs(total: int, ran: dict[int, RunOutcome]) -> list[TestOutput]:
    """One entry per test, in order: "ok" with the output's digest, the fault, or Skipped (never started, or
    cut by the deadline)."""
    outputs = []
    for j in range(total):
        o = ran.get(j)
        if o is None:
            outputs.append(TestOutput(status="Skipped", digest="", shown=""))
        elif o.error_type is None:
            outputs.append(TestOutput(status="ok", digest=o.digest or "", shown=o.shown))
        else:
            outputs.append(TestOutput(status=o.error_type, digest="", shown=o.shown))
    return outputs
