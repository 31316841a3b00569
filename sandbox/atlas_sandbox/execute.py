"""``POST /execute``: one program, optionally with test code run after it, optionally scored by pylint."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from atlas_core.sandbox_api import ExecuteRequest, ExecuteResponse
from atlas_sandbox import programs
from atlas_sandbox.files import check_names
from atlas_sandbox.languages import EXE, Toolchain
from atlas_sandbox.limits import Limits
from atlas_sandbox.outcomes import InvalidRun, assertion_failed, classify, pytest_argv, pytest_files, text

if TYPE_CHECKING:
    from atlas_sandbox.executor import Executor


def _harness(req: ExecuteRequest, name: str) -> tuple[dict[str, str], list[str], bool]:
    """The harness files of the work directory, the harness to run (file, then its arguments; empty: run the
    program itself) and whether the test code runs under pytest."""
    if req.test_code is None:
        return {}, [], False
    if name == "python":
        if "def test_" in req.test_code:
            return pytest_files(req.code, {"test_main.py": req.test_code}), [], True
        return {"harness.py": programs.python_statements(req.test_code)}, ["harness.py"], False
    if name == "javascript":
        return ({"run.js": programs.javascript_runner(),
                 "check.js": programs.javascript_assert(req.code, "", req.test_code)}, ["run.js", "check.js"], False)
    raise InvalidRun(f"test_code: supported for python and javascript; for {name} use /judge in stdin mode")


async def execute(ex: Executor, req: ExecuteRequest, limits: Limits) -> ExecuteResponse:
    tc = ex.toolchain(req.language)
    if req.files:
        check_names(req.files)
    if req.timeout is not None:
        limits = replace(limits, timeout_s=min(limits.timeout_s, req.timeout))
    token = programs.nonce()
    name = tc.language.name
    extra, harness, pytest_style = _harness(req, name)
    started = time.monotonic()
    d = ex.workdir(tc, req.code, extra, req.files)
    try:
        err, output = await ex.compile(tc, d, ex.compile_limits.timeout_s)
        if err is not None:
            return ExecuteResponse(success=False, compile_success=False, tests_run=0, tests_passed=0,
                                   lint_score=None, stdout="", stderr=output or "", error_type=err,
                                   error_message=output, execution_time_ms=(time.monotonic() - started) * 1000)
        root = ex.runner.work_root(d)
        stdin = req.stdin.encode() if req.stdin else None
        if req.test_code is not None:  # every harness reads the nonce first (pytest's plugin too)
            stdin = f"{token}\n{req.stdin or ''}".encode()
        if pytest_style:
            res = await ex.run(pytest_argv(tc, root, "test_main.py"), d, limits, stdin=stdin, cwd_work=True)
        elif harness:
            argv = [*tc.argv(tc.language.run, f"{root}/{harness[0]}", ""), *(f"{root}/{h}" for h in harness[1:])]
            res = await ex.run(argv, d, limits, stdin=stdin, address_space=tc.language.limit_address_space)
        else:
            argv = tc.argv(tc.language.run, f"{root}/{tc.language.source}", f"{root}/{EXE}")
            res = await ex.run(argv, d, limits, stdin=stdin, address_space=tc.language.limit_address_space)
        stdout = text(res.stdout)
        err, message = classify(res, limits)
        run = passed = 0
        if req.test_code is not None:
            counts = programs.find_marker(stdout, token)
            stdout = programs.strip_marker(stdout, token)
            if name == "javascript":
                run, passed = 1, int(err is None and counts is not None)
            elif counts is not None:
                data = json.loads(counts)
                run, passed = int(data["run"]), int(data["passed"])
                if data.get("first") and err in (None, "RuntimeError"):
                    message = str(data["first"].get("error") or "")
            if assertion_failed(err, res):
                err = "TestFailure"
            if err is None and (counts is None or passed < run):
                err = "TestFailure"
                message = message or "the program ended before its tests finished"
            if pytest_style and err == "RuntimeError" and counts is not None and passed < run:
                err = "TestFailure"  # pytest exits 1 when a test fails
        lint = await _lint(ex, tc, d, limits) if req.lint and name == "python" else None
        return ExecuteResponse(
            success=err is None, compile_success=True, tests_run=run, tests_passed=passed, lint_score=lint,
            stdout=stdout, stderr=text(res.stderr), error_type=err, error_message=message,
            execution_time_ms=round(res.wall_ms, 3), output_truncated=res.output_truncated,
            peak_memory_kb=res.peak_memory_kb,
        )
    finally:
        ex.dirs.remove(d)


async def _lint(ex: Executor, tc: Toolchain, d: Path, limits: Limits) -> float | None:
    """pylint's score, or None when it cannot finish within the caller's limits: a token or request may only
    lower limits, so lint gets the same ones as the program, never more."""
    root = ex.runner.work_root(d)
    argv = [tc.paths["python3"], "-B", "-m", "pylint", "--score=y", "--persistent=n", "--jobs=1",
            f"{root}/{tc.language.source}"]
    res = await ex.run(argv, d, limits, address_space=tc.language.limit_address_space)
    for line in text(res.stdout).splitlines():
        if "rated at" in line:
            try:
                return float(line.split("rated at", 1)[1].split("/", 1)[0])
            except ValueError:
                return None
    return None
