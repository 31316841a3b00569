"""The test runs of one /judge candidate: all its stdin tests in one sandbox through driver.py, or one sandbox
per test in the other modes, a few at a time."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from atlas_core.sandbox_api import SHOWN_OUTPUT, JudgeRequest, TestCase
from atlas_sandbox import programs
from atlas_sandbox.compare import functional_digest, functional_matches
from atlas_sandbox.languages import EXE, Toolchain
from atlas_sandbox.limits import Limits
from atlas_sandbox.outcomes import RunOutcome, assertion_failed, classify, pytest_argv, pytest_files, tail, text
from atlas_sandbox.runner import SandboxFailure

if TYPE_CHECKING:
    from atlas_sandbox.executor import Executor


@dataclass
class JudgeCall:
    """What every candidate of one /judge call shares."""

    req: JudgeRequest
    tc: Toolchain
    limits: Limits
    deadline: float  # time.monotonic() at which the call's budget ends: later tests are Skipped
    window: int  # tests of one candidate run at once
    passed_event: asyncio.Event | None  # with stop_on_first_pass: set once a candidate passes
    stop: threading.Event  # set when running batches must end now (a candidate passed, or the call failed)

    @property
    def collect(self) -> bool:
        return self.req.collect_outputs

    @property
    def stop_on_failure(self) -> bool:
        return self.req.stop_on_first_failure and not self.req.collect_outputs  # collecting runs every test


def test_files(req: JudgeRequest, code: str, stdin_files: dict[str, str], lang: str) -> dict[str, str]:
    """The harness and test files of a candidate's work directory: none holds the run's nonce."""
    if req.mode == "functional":
        return {"harness.py": programs.python_functional(req.func_name or "")}
    if req.mode == "assert":
        if lang == "python":
            tests = {f"t{j}.py": programs.python_assert(code, req.setup, t.code) for j, t in enumerate(req.tests)}
            return {"run.py": programs.python_runner(), **tests}
        tests = {f"t{j}.js": programs.javascript_assert(code, req.setup, t.code) for j, t in enumerate(req.tests)}
        return {"run.js": programs.javascript_runner(), **tests}
    if req.mode == "stdin":
        return stdin_files
    return pytest_files(code, {f"test_{j}.py": t.code for j, t in enumerate(req.tests)})  # pytest


async def stdin_batch(ex: Executor, call: JudgeCall, d: Path) -> dict[int, RunOutcome]:
    """All stdin tests of one candidate in one sandbox, through driver.py (one process per test inside)."""
    req, tc, limits, window = call.req, call.tc, call.limits, call.window
    root = ex.runner.work_root(d)
    budget = max(0.0, call.deadline - time.monotonic())
    # collecting: the expected outputs are ignored, so they need not travel
    tests = [{"input": t.input, "output": "" if call.collect else t.output} for t in req.tests]
    spec = {"command": tc.argv(tc.language.run, f"{root}/{tc.language.source}", f"{root}/{EXE}"),
            "tests": tests, "collect": call.collect,
            "timeout_s": limits.timeout_s, "cpu_s": max(1, math.ceil(limits.cpu_s)),
            "output_bytes": limits.output_kb * 1024, "stop_on_first_failure": call.stop_on_failure,
            "processes": limits.processes, "open_files": limits.open_files,
            "parallel": window, "budget_s": budget,
            "address_space": limits.address_space_bytes() if tc.language.limit_address_space else None}
    # The driver and its children share the run's cgroup: room for `window` programs plus the driver. Its
    # rlimits must stay above each test's, which a process may lower but never raise.
    outer = replace(limits, timeout_s=budget + 2, cpu_s=max(budget, limits.cpu_s) + 2,
                    memory_mb=limits.memory_mb * window + 64, processes=limits.processes * window + 16,
                    file_mb=max(limits.file_mb, limits.output_kb // 1024 + 1),
                    output_kb=max(limits.output_kb, 8 * len(req.tests)))
    res = await ex.run([tc.paths.get("python3", "/usr/bin/python3"), "-B", "-S", f"{root}/driver.py"], d,
                       outer, stdin=json.dumps(spec).encode(), address_space=False, cancel=call.stop)
    outcomes: dict[int, RunOutcome] = {}
    for line in text(res.stdout).splitlines():
        try:
            item = json.loads(line)
            j = int(item["i"])
        except (ValueError, KeyError, TypeError):
            continue
        if 0 <= j < len(req.tests) and j not in outcomes:  # the driver's first word on a test is final
            got = item.get("got")
            outcomes[j] = RunOutcome(item.get("error_type"), got=got, error=item.get("error"),
                                     skipped=bool(item.get("skipped")), time_ms=item.get("time_ms", 0.0),
                                     digest=item.get("digest"), shown=str(got or "")[:SHOWN_OUTPUT])
    err, message = classify(res, outer)
    if err is not None and not (res.timed_out or res.cancelled):
        missing = next((j for j in range(len(req.tests)) if j not in outcomes), None)
        if missing is not None and not any(o.error_type for o in outcomes.values()):
            # The batch died under a test: the run's memory or output limit, or a signal, which only a
            # program (or the kernel's OOM killer) sends to its driver. A driver that exited with an
            # error of its own is the sandbox's failure.
            if err not in ("MemoryLimit", "OutputLimit") and res.signal is None:
                raise SandboxFailure(f"the stdin driver failed: {tail(res.stderr, 500)}")
            outcomes[missing] = RunOutcome(err if err in ("MemoryLimit", "OutputLimit") else "RuntimeError",
                                           error=message)
    return outcomes


async def run_tests(ex: Executor, call: JudgeCall, d: Path, token: str) -> dict[int, RunOutcome]:
    """The tests of one candidate in the functional, assert and pytest modes: one sandbox each, ``window`` at
    a time, none launched after a failure (with stop_on_first_failure), a pass elsewhere or the deadline."""
    tests = call.req.tests
    outcomes: dict[int, RunOutcome] = {}
    running: dict[asyncio.Task[RunOutcome], int] = {}
    following = 0
    failed = False
    try:
        while following < len(tests) or running:
            while (following < len(tests) and len(running) < call.window and not failed
                   and time.monotonic() < call.deadline and not (call.passed_event and call.passed_event.is_set())):
                task = asyncio.create_task(run_test(ex, call, d, token, following, tests[following]))
                running[task] = following
                following += 1
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                j = running.pop(task)
                outcomes[j] = task.result()
                if outcomes[j].error_type is not None and call.stop_on_failure:
                    failed = True
    finally:
        for task in running:
            task.cancel()
    return outcomes


async def run_test(ex: Executor, call: JudgeCall, d: Path, token: str, j: int, test: TestCase) -> RunOutcome:
    req, tc, limits = call.req, call.tc, call.limits
    remaining = call.deadline - time.monotonic()
    if remaining <= 0:
        return RunOutcome(None, skipped=True)
    cut = remaining < limits.timeout_s
    run_limits = replace(limits, timeout_s=min(limits.timeout_s, remaining)) if cut else limits
    root = ex.runner.work_root(d)
    cwd_work = False
    stdin = f"{token}\n".encode()  # every harness reads the nonce first
    if req.mode == "functional":
        argv = tc.argv(tc.language.run, f"{root}/harness.py", "")
        stdin = f"{token}\n{test.input}".encode()
    elif req.mode == "assert":
        ext = "py" if tc.language.name == "python" else "js"
        argv = [*tc.argv(tc.language.run, f"{root}/run.{ext}", ""), f"{root}/t{j}.{ext}"]
    else:
        argv = pytest_argv(tc, root, f"test_{j}.py")
        cwd_work = True
    res = await ex.run(argv, d, run_limits, stdin=stdin, cwd_work=cwd_work,
                       address_space=tc.language.limit_address_space)
    err, message = classify(res, run_limits)
    if err == "Timeout" and cut:
        return RunOutcome(None, skipped=True, time_ms=res.wall_ms)
    stdout = text(res.stdout)
    outcome = RunOutcome(err, error=message, time_ms=res.wall_ms, peak_kb=res.peak_memory_kb)
    if req.mode == "functional":
        payload = programs.find_marker(stdout, token)
        outcome.got = payload
        if err is None and payload is None:
            outcome.error_type, outcome.error = "RuntimeError", "the program ended before returning a result"
        elif err is None and payload is not None and call.collect:
            outcome.digest, outcome.shown = functional_digest(payload), payload[:SHOWN_OUTPUT]
        elif err is None and payload is not None and not functional_matches(payload, test.output):
            outcome.error_type, outcome.error = "TestFailure", "wrong answer"
        if outcome.error_type is not None:  # what it printed before the fault
            outcome.shown = programs.strip_marker(stdout, token)[:SHOWN_OUTPUT]
    elif req.mode == "assert":
        if assertion_failed(err, res):
            outcome.error_type = "TestFailure"
        elif err is None and programs.find_marker(stdout, token) is None:
            outcome.error_type = "TestFailure"
            outcome.error = "the program exited before its tests finished"
    else:
        counts = programs.find_marker(stdout, token)
        data = json.loads(counts) if counts else None
        if data is not None and data["run"] > 0 and data["passed"] == data["run"] and err is None:
            outcome.error_type = None
        elif data is not None and data["run"] > 0:
            outcome.error_type = err if err not in (None, "RuntimeError") else "TestFailure"
            outcome.error = (data.get("first") or {}).get("error") or outcome.error
        elif err is None or err == "RuntimeError":
            outcome.error_type = "RuntimeError"
            outcome.error = tail(res.stdout + res.stderr) or "pytest collected no test"
    return outcome
