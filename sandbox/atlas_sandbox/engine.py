"""Compiles and runs candidates against tests: the logic behind /execute and /judge.

Runs go to a pool of worker threads sized to the CPUs (each run is one sandboxed process); requests beyond
the workers plus a bounded queue are refused with 503. A candidate is compiled once and run once per test;
its tests run a few at a time so a single candidate with many tests still uses every core, and a failing test
stops the launching of more. Verdicts that do not depend on load are cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from atlas_sandbox import programs, seccomp
from atlas_sandbox.cgroups import Cgroups
from atlas_sandbox.compare import MEMORY_WORDS, functional_matches
from atlas_sandbox.files import WorkDirs, check_names, check_reachable, write
from atlas_sandbox.languages import EXE, UNREADABLE, Toolchain, discover, lookup
from atlas_sandbox.limits import Limits
from atlas_sandbox.runner import Runner, RunnerConfig, RunResult, SandboxFailure
from atlas_sandbox.schemas import (
    CandidateResult,
    ExecuteRequest,
    ExecuteResponse,
    Failure,
    JudgeRequest,
    JudgeResponse,
    TestCase,
)
from atlas_sandbox.settings import Settings

SHOWN = 2000  # characters of input, expected and actual output a failure report keeps
CACHEABLE = {"passed", "TestFailure", "CompileError", "SyntaxError", "RuntimeError", "MemoryLimit", "OutputLimit"}
MODES_BY_LANGUAGE = {"functional": {"python"}, "pytest": {"python"}, "assert": {"python", "javascript"}}


class Busy(Exception):
    """503: every worker is busy and the queue is full."""


class BadRequest(ValueError):
    """400 with a message naming the field."""


@dataclass
class Outcome:
    """One test run's result; ``error_type`` None means the test passed."""

    error_type: str | None
    got: str | None = None
    error: str | None = None
    skipped: bool = False
    time_ms: float = 0.0
    peak_kb: int | None = None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _cut(text: str | None) -> tuple[str | None, bool]:
    if text is None or len(text) <= SHOWN:
        return text, False
    return text[:SHOWN], True


def _tail(raw: bytes, size: int = SHOWN) -> str:
    return _text(raw[-size:]).strip()


def classify(res: RunResult, limits: Limits) -> tuple[str | None, str | None]:
    """The error type of a finished run (None when it exited 0 within every limit)."""
    if res.timed_out or res.cpu_exceeded:
        return "Timeout", f"exceeded the time limit ({limits.timeout_s:g} s wall, {math.ceil(limits.cpu_s)} s CPU)"
    if res.output_truncated:
        return "OutputLimit", f"wrote more than {limits.output_kb} KB; output cut and the run stopped"
    if res.oom or (res.exit_code != 0 and any(word in res.stderr[-4096:] for word in MEMORY_WORDS)):
        return "MemoryLimit", f"exceeded the memory limit ({limits.memory_mb} MB)"
    if res.file_too_large:
        return "RuntimeError", f"wrote a file larger than {limits.file_mb} MB"
    if res.signal is not None:
        name = signal.Signals(res.signal).name if res.signal in signal.Signals._value2member_map_ else res.signal
        return "RuntimeError", f"killed by signal {name}: {_tail(res.stderr, 500)}".rstrip(": ")
    if res.exit_code != 0:
        last = _tail(res.stderr, 1000)
        return "RuntimeError", last or f"exit code {res.exit_code}"
    return None, None


def _assertion_failed(err: str | None, res: RunResult) -> bool:
    """A test program that died of an AssertionError failed its test; it did not crash."""
    return err == "RuntimeError" and b"AssertionError" in res.stderr[-4096:]


def _pytest_argv(tc: Toolchain, root: str, test_file: str) -> list[str]:
    # python -m puts the cwd (the work directory: these runs use cwd_work) first on sys.path, where -p finds
    # the reporting plugin
    return [tc.paths["python3"], "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
            programs.PYTEST_PLUGIN, f"--rootdir={root}", f"{root}/{test_file}"]


def _pytest_files(code: str, tests: dict[str, str]) -> dict[str, str]:
    return {"solution.py": code, f"{programs.PYTEST_PLUGIN}.py": programs.pytest_plugin(), **tests}


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limits = settings.limits()
        self.compile_limits = settings.compile_limits()
        self.workers = settings.sandbox_workers or os.cpu_count() or 1
        self.toolchains = discover()
        self.dirs = WorkDirs(settings.sandbox_work_dir)
        isolated = settings.sandbox_isolation != "none"
        if isolated and os.geteuid() == 0:
            check_reachable(self.dirs.base)
        self.cgroups = Cgroups.open() if settings.sandbox_cgroups else None
        bpf = seccomp.build(self.dirs.base / "seccomp.bpf") if isolated else None
        self.runner = Runner(RunnerConfig(isolation=settings.sandbox_isolation, run_uid=settings.sandbox_run_uid,
                                          tmp_mb=settings.sandbox_tmp_mb, seccomp=bpf), self.cgroups)
        self.features = {"isolation": settings.sandbox_isolation, "cgroups": self.cgroups is not None,
                         "seccomp": bpf is not None}
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox-run")
        self.cache: OrderedDict[str, CandidateResult] = OrderedDict()
        # driver.py and compare.py run inside the sandbox too: copied into each stdin candidate's work dir
        here = Path(__file__).parent
        self.stdin_files = {"driver.py": (here / "driver.py").read_text(),
                            "atlas_compare.py": (here / "compare.py").read_text()}
        self.active = 0

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.cgroups is not None:
            self.cgroups.close()
        self.dirs.close()

    def self_test(self) -> None:
        """Run ``true`` once: a host where bubblewrap cannot create its namespaces fails here, at start."""
        d = self.dirs.new()
        try:
            self.runner.prepare_workdir(d)
            res = self.runner.run(["true"], d, self.limits)
            if res.exit_code != 0:
                raise SandboxFailure(f"the sandbox self-test failed: {_tail(res.stderr)}")
        finally:
            self.dirs.remove(d)

    @contextmanager
    def admit(self) -> Iterator[None]:
        if self.active >= self.workers + self.settings.sandbox_queue_limit:
            raise Busy(f"all {self.workers} sandbox workers are busy and {self.settings.sandbox_queue_limit} "
                       "requests are waiting; retry shortly")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

    def toolchain(self, language: str, field: str = "language") -> Toolchain:
        lang = lookup(language)
        if lang is None:
            raise BadRequest(f"{field}: unknown language {language!r}; known: "
                             + ", ".join(sorted(self.toolchains)))
        tc = self.toolchains.get(lang.name)
        if tc is None:
            raise BadRequest(f"{field}: {lang.name} is not installed on this sandbox host; available: "
                             + ", ".join(sorted(self.toolchains)))
        return tc

    async def _run(self, command: list[str], workdir: Path, limits: Limits, **kwargs: Any) -> RunResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: self.runner.run(command, workdir, limits, **kwargs))

    def _workdir(self, tc: Toolchain, code: str, extra: dict[str, str], files: dict[str, str] | None) -> Path:
        d = self.dirs.new()
        try:
            self.runner.prepare_workdir(d)
            write(d, tc.language.source, code)
            for name, content in extra.items():
                write(d, name, content)
            for name, content in (files or {}).items():
                write(d, name, content)
        except Exception:
            self.dirs.remove(d)
            raise
        return d

    async def _compile(self, tc: Toolchain, d: Path, budget_s: float) -> tuple[str | None, str | None]:
        """(error type, compiler output) of the compile step; (None, None) when it passed or there is none."""
        if tc.language.compile is None:
            return None, None
        root = self.runner.work_root(d)
        argv = tc.argv(tc.language.compile, f"{root}/{tc.language.source}", f"{root}/{EXE}")
        limits = replace(self.compile_limits, timeout_s=min(self.compile_limits.timeout_s, max(budget_s, 0.1)))
        res = await self._run(argv, d, limits, writable=True, cwd_work=True, address_space=False)
        if res.exit_code == 0 and not (res.timed_out or res.output_truncated):
            return None, None
        if res.exit_code == UNREADABLE and tc.language.name == "python":
            raise SandboxFailure(f"the run could not read its own source: {_tail(res.stderr, 300)}")
        output = _tail(res.stderr + res.stdout, 8000)
        if res.timed_out:
            output = f"the compile step exceeded {limits.timeout_s:g} s"
        return tc.language.syntax_error, output or f"compiler exit code {res.exit_code}"

    # ------------------------------------------------------------------ /execute

    async def execute(self, req: ExecuteRequest, limits: Limits) -> ExecuteResponse:
        tc = self.toolchain(req.language)
        if req.files:
            check_names(req.files)
        if req.timeout is not None:
            limits = replace(limits, timeout_s=min(limits.timeout_s, req.timeout))
        token = programs.nonce()
        extra: dict[str, str] = {}
        name = tc.language.name
        harness: list[str] = []  # the harness file and its arguments, run instead of the program
        pytest_style = False
        if req.test_code is not None:
            if name == "python":
                pytest_style = "def test_" in req.test_code
                if pytest_style:
                    extra = _pytest_files(req.code, {"test_main.py": req.test_code})
                else:
                    extra = {"harness.py": programs.python_statements(req.test_code)}
                    harness = ["harness.py"]
            elif name == "javascript":
                extra = {"run.js": programs.javascript_runner(),
                         "check.js": programs.javascript_assert(req.code, "", req.test_code)}
                harness = ["run.js", "check.js"]
            else:
                raise BadRequest(f"test_code: supported for python and javascript; for {name} use /judge in "
                                 "stdin mode")
        started = time.monotonic()
        d = self._workdir(tc, req.code, extra, req.files)
        try:
            err, output = await self._compile(tc, d, self.compile_limits.timeout_s)
            if err is not None:
                return ExecuteResponse(success=False, compile_success=False, tests_run=0, tests_passed=0,
                                       lint_score=None, stdout="", stderr=output or "", error_type=err,
                                       error_message=output, execution_time_ms=(time.monotonic() - started) * 1000)
            root = self.runner.work_root(d)
            stdin = req.stdin.encode() if req.stdin else None
            if req.test_code is not None:  # every harness reads the nonce first (pytest's plugin too)
                stdin = f"{token}\n{req.stdin or ''}".encode()
            if pytest_style:
                res = await self._run(_pytest_argv(tc, root, "test_main.py"), d, limits, stdin=stdin, cwd_work=True)
            elif harness:
                argv = [*tc.argv(tc.language.run, f"{root}/{harness[0]}", ""), *(f"{root}/{h}" for h in harness[1:])]
                res = await self._run(argv, d, limits, stdin=stdin, address_space=tc.language.limit_address_space)
            else:
                argv = tc.argv(tc.language.run, f"{root}/{tc.language.source}", f"{root}/{EXE}")
                res = await self._run(argv, d, limits, stdin=stdin,
                                      address_space=tc.language.limit_address_space)
            stdout = _text(res.stdout)
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
                if _assertion_failed(err, res):
                    err = "TestFailure"
                if err is None and (counts is None or passed < run):
                    err = "TestFailure"
                    message = message or "the program ended before its tests finished"
                if pytest_style and err == "RuntimeError" and counts is not None and passed < run:
                    err = "TestFailure"  # pytest exits 1 when a test fails
            lint = await self._lint(tc, d, limits) if req.lint and name == "python" else None
            return ExecuteResponse(
                success=err is None, compile_success=True, tests_run=run, tests_passed=passed, lint_score=lint,
                stdout=stdout, stderr=_text(res.stderr), error_type=err, error_message=message,
                execution_time_ms=round(res.wall_ms, 3), output_truncated=res.output_truncated,
                peak_memory_kb=res.peak_memory_kb,
            )
        finally:
            self.dirs.remove(d)

    async def _lint(self, tc: Toolchain, d: Path, limits: Limits) -> float | None:
        """pylint's score, or None when it cannot finish within the caller's limits: a token or request may only
        lower limits, so lint gets the same ones as the program, never more."""
        root = self.runner.work_root(d)
        argv = [tc.paths["python3"], "-B", "-m", "pylint", "--score=y", "--persistent=n", "--jobs=1",
                f"{root}/{tc.language.source}"]
        res = await self._run(argv, d, limits, address_space=tc.language.limit_address_space)
        for line in _text(res.stdout).splitlines():
            if "rated at" in line:
                try:
                    return float(line.split("rated at", 1)[1].split("/", 1)[0])
                except ValueError:
                    return None
        return None

    # ------------------------------------------------------------------ /judge

    def _check_judge(self, req: JudgeRequest) -> Toolchain:
        tc = self.toolchain(req.language)
        allowed = MODES_BY_LANGUAGE.get(req.mode)
        if allowed is not None and tc.language.name not in allowed:
            raise BadRequest(f"mode: {req.mode} mode supports {', '.join(sorted(allowed))}, not "
                             f"{tc.language.name}; use stdin mode")
        if req.mode == "functional" and not req.func_name:
            raise BadRequest("func_name: functional mode needs the name of the function to call")
        if req.mode in ("assert", "pytest") and not all(t.code for t in req.tests):
            raise BadRequest(f"tests: every test of {req.mode} mode needs 'code'")
        if req.files:
            check_names(req.files)
        return tc

    def _key(self, req: JudgeRequest, code: str, limits: Limits, window: int) -> str:
        # window: a stdin batch's programs share one cgroup sized by it, so memory verdicts depend on it
        blob = json.dumps([code, req.language, req.mode, req.setup, req.func_name, req.stop_on_first_failure,
                           [t.model_dump() for t in req.tests], req.files, limits.__dict__, window], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    async def judge(self, req: JudgeRequest, limits: Limits) -> JudgeResponse:
        tc = self._check_judge(req)
        started = time.monotonic()
        budget = min(req.deadline_s or self.settings.sandbox_deadline_s, self.settings.sandbox_deadline_s)
        deadline = started + budget
        passed_event = asyncio.Event() if req.stop_on_first_pass else None
        stop = threading.Event()  # set when a candidate passes (with stop_on_first_pass): running batches end
        window = max(1, math.ceil(self.workers / len(req.candidates)))
        tasks = [asyncio.create_task(self._candidate(i, c.id, c.code, req, tc, limits, deadline, window,
                                                     passed_event, stop))
                 for i, c in enumerate(req.candidates)]
        try:
            results = list(await asyncio.gather(*tasks))
        except BaseException:
            stop.set()  # running batches end now, not at their budget
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        first = next((r.index for r in results if r.passed), None)
        hit = time.monotonic() >= deadline and any(r.verdict == "Skipped" for r in results)
        return JudgeResponse(candidates=results, first_passing=first, deadline_hit=hit,
                             elapsed_ms=round((time.monotonic() - started) * 1000, 3))

    async def _candidate(self, index: int, cid: str | None, code: str, req: JudgeRequest, tc: Toolchain,
                         limits: Limits, deadline: float, window: int,
                         passed_event: asyncio.Event | None, stop: threading.Event) -> CandidateResult:
        key = self._key(req, code, limits, window) if self.settings.sandbox_cache_entries else ""
        if key and key in self.cache:
            self.cache.move_to_end(key)
            cached = self.cache[key].model_copy(update={"index": index, "id": cid, "cached": True})
            if cached.passed and passed_event is not None:
                passed_event.set()
                stop.set()
            return cached
        started = time.monotonic()
        token = programs.nonce()
        d = self._workdir(tc, code, self._test_files(req, tc.language.name, code), req.files)
        try:
            err, output = await self._compile(tc, d, deadline - time.monotonic())
            total = len(req.tests)
            if err is not None:
                result = CandidateResult(index=index, id=cid, verdict=err, passed=False,
                                         tests_passed=0, tests_run=0, tests_total=total, compile_output=output,
                                         time_ms=round((time.monotonic() - started) * 1000, 3))
            else:
                if req.mode == "stdin":
                    outcomes = await self._stdin_batch(req, tc, d, limits, deadline, window, stop)
                else:
                    outcomes = await self._tests(req, tc, d, token, limits, deadline, window, passed_event)
                result = self._verdict(index, cid, req, outcomes, started)
        finally:
            self.dirs.remove(d)
        if result.passed and passed_event is not None:
            passed_event.set()
            stop.set()
        if key and result.verdict in CACHEABLE:
            self.cache[key] = result
            while len(self.cache) > self.settings.sandbox_cache_entries:
                self.cache.popitem(last=False)
        return result

    async def _stdin_batch(self, req: JudgeRequest, tc: Toolchain, d: Path, limits: Limits, deadline: float,
                           window: int, stop: threading.Event) -> dict[int, Outcome]:
        """All stdin tests of one candidate in one sandbox, through driver.py (one process per test inside)."""
        root = self.runner.work_root(d)
        budget = max(0.0, deadline - time.monotonic())
        spec = {"command": tc.argv(tc.language.run, f"{root}/{tc.language.source}", f"{root}/{EXE}"),
                "tests": [{"input": t.input, "output": t.output} for t in req.tests],
                "timeout_s": limits.timeout_s, "cpu_s": max(1, math.ceil(limits.cpu_s)),
                "output_bytes": limits.output_kb * 1024, "stop_on_first_failure": req.stop_on_first_failure,
                "processes": limits.processes, "open_files": limits.open_files,
                "parallel": window, "budget_s": budget,
                "address_space": limits.address_space_bytes() if tc.language.limit_address_space else None}
        # The driver and its children share the run's cgroup: room for `window` programs plus the driver. Its
        # rlimits must stay above each test's, which a process may lower but never raise.
        outer = replace(limits, timeout_s=budget + 2, cpu_s=max(budget, limits.cpu_s) + 2,
                        memory_mb=limits.memory_mb * window + 64, processes=limits.processes * window + 16,
                        file_mb=max(limits.file_mb, limits.output_kb // 1024 + 1),
                        output_kb=max(limits.output_kb, 8 * len(req.tests)))
        res = await self._run([tc.paths.get("python3", "/usr/bin/python3"), "-B", "-S", f"{root}/driver.py"], d,
                              outer, stdin=json.dumps(spec).encode(), address_space=False, cancel=stop)
        outcomes: dict[int, Outcome] = {}
        for line in _text(res.stdout).splitlines():
            try:
                item = json.loads(line)
                j = int(item["i"])
            except (ValueError, KeyError, TypeError):
                continue
            if 0 <= j < len(req.tests) and j not in outcomes:  # the driver's first word on a test is final
                outcomes[j] = Outcome(item.get("error_type"), got=item.get("got"), error=item.get("error"),
                                      skipped=bool(item.get("skipped")), time_ms=item.get("time_ms", 0.0))
        err, message = classify(res, outer)
        if err is not None and not (res.timed_out or res.cancelled):
            missing = next((j for j in range(len(req.tests)) if j not in outcomes), None)
            if missing is not None and not any(o.error_type for o in outcomes.values()):
                # The batch died under a test: the run's memory or output limit, or a signal, which only a
                # program (or the kernel's OOM killer) sends to its driver. A driver that exited with an
                # error of its own is the sandbox's failure.
                if err not in ("MemoryLimit", "OutputLimit") and res.signal is None:
                    raise SandboxFailure(f"the stdin driver failed: {_tail(res.stderr, 500)}")
                outcomes[missing] = Outcome(err if err in ("MemoryLimit", "OutputLimit") else "RuntimeError",
                                            error=message)
        return outcomes

    def _test_files(self, req: JudgeRequest, lang: str, code: str) -> dict[str, str]:
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
            return self.stdin_files
        return _pytest_files(code, {f"test_{j}.py": t.code for j, t in enumerate(req.tests)})  # pytest

    async def _tests(self, req: JudgeRequest, tc: Toolchain, d: Path, token: str, limits: Limits,
                     deadline: float, window: int, passed_event: asyncio.Event | None) -> dict[int, Outcome]:
        outcomes: dict[int, Outcome] = {}
        running: dict[asyncio.Task[Outcome], int] = {}
        following = 0
        failed = False
        try:
            while following < len(req.tests) or running:
                while (following < len(req.tests) and len(running) < window and not failed
                       and time.monotonic() < deadline and not (passed_event and passed_event.is_set())):
                    test = req.tests[following]
                    task = asyncio.create_task(self._test(req, tc, d, token, following, test, limits, deadline))
                    running[task] = following
                    following += 1
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    j = running.pop(task)
                    outcomes[j] = task.result()
                    if outcomes[j].error_type is not None and req.stop_on_first_failure:
                        failed = True
        finally:
            for task in running:
                task.cancel()
        return outcomes

    async def _test(self, req: JudgeRequest, tc: Toolchain, d: Path, token: str, j: int, test: TestCase,
                    limits: Limits, deadline: float) -> Outcome:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Outcome(None, skipped=True)
        cut = remaining < limits.timeout_s
        run_limits = replace(limits, timeout_s=min(limits.timeout_s, remaining)) if cut else limits
        root = self.runner.work_root(d)
        cwd_work = False
        stdin = f"{token}\n".encode()  # every harness reads the nonce first
        if req.mode == "functional":
            argv = tc.argv(tc.language.run, f"{root}/harness.py", "")
            stdin = f"{token}\n{test.input}".encode()
        elif req.mode == "assert":
            ext = "py" if tc.language.name == "python" else "js"
            argv = [*tc.argv(tc.language.run, f"{root}/run.{ext}", ""), f"{root}/t{j}.{ext}"]
        else:
            argv = _pytest_argv(tc, root, f"test_{j}.py")
            cwd_work = True
        res = await self._run(argv, d, run_limits, stdin=stdin, cwd_work=cwd_work,
                              address_space=tc.language.limit_address_space)
        err, message = classify(res, run_limits)
        if err == "Timeout" and cut:
            return Outcome(None, skipped=True, time_ms=res.wall_ms)
        stdout = _text(res.stdout)
        outcome = Outcome(err, error=message, time_ms=res.wall_ms, peak_kb=res.peak_memory_kb)
        if req.mode == "functional":
            payload = programs.find_marker(stdout, token)
            outcome.got = payload
            if err is None and payload is None:
                outcome.error_type, outcome.error = "RuntimeError", "the program ended before returning a result"
            elif err is None and payload is not None and not functional_matches(payload, test.output):
                outcome.error_type, outcome.error = "TestFailure", "wrong answer"
        elif req.mode == "assert":
            if _assertion_failed(err, res):
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
                outcome.error = _tail(res.stdout + res.stderr) or "pytest collected no test"
        return outcome

    @staticmethod
    def _verdict(index: int, cid: str | None, req: JudgeRequest, outcomes: dict[int, Outcome],
                 started: float) -> CandidateResult:
        ran = {j: o for j, o in outcomes.items() if not o.skipped}
        failures = sorted(j for j, o in ran.items() if o.error_type is not None)
        total = len(req.tests)
        passed_count = sum(1 for o in ran.values() if o.error_type is None)
        failure = None
        if failures:
            j = failures[0]
            o = ran[j]
            test = req.tests[j]
            shown_in, t1 = _cut(test.input if req.mode in ("stdin", "functional") else test.code)
            expected, t2 = _cut(test.output if req.mode in ("stdin", "functional") else None)
            got, t3 = _cut(o.got)
            error, t4 = _cut(o.error)
            failure = Failure(test_index=j, input=shown_in, expected=expected, got=got, error=error,
                              truncated=t1 or t2 or t3 or t4)
            verdict = o.error_type
        elif passed_count == total:
            verdict = "passed"
        else:
            verdict = "Skipped"
        peaks = [o.peak_kb for o in ran.values() if o.peak_kb is not None]
        return CandidateResult(
            index=index, id=cid, verdict=verdict, passed=verdict == "passed",
            tests_passed=passed_count, tests_run=len(ran), tests_total=total, first_failure=failure,
            time_ms=round((time.monotonic() - started) * 1000, 3), peak_memory_kb=max(peaks) if peaks else None,
        )

