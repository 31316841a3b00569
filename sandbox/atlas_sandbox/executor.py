"""Compiles and runs candidates against tests: the machinery behind /execute and /judge.

Runs go to a pool of worker threads sized to the CPUs (each run is one sandboxed process); requests beyond
the workers plus a bounded queue are refused with 503. A candidate is compiled once and run once per test;
its tests run a few at a time so a single candidate with many tests still uses every core, and a failing test
stops the launching of more (unless the request collects outputs, which runs every test). Verdicts that do not
depend on load are cached.

``execute`` (in execute.py) and ``judge`` (judge.py, judge_tests.py) are plain functions over this object:
it holds what they share, the runner, the pool, the work directories, the toolchains and the verdict cache.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from atlas_core.sandbox_api import CandidateResult, ExecuteRequest, ExecuteResponse, JudgeRequest, JudgeResponse
from atlas_sandbox import seccomp
from atlas_sandbox.cgroups import Cgroups
from atlas_sandbox.execute import execute as run_execute
from atlas_sandbox.files import WorkDirs, check_reachable, write
from atlas_sandbox.judge import judge as run_judge
from atlas_sandbox.languages import EXE, UNREADABLE, Toolchain, discover, lookup
from atlas_sandbox.limits import Limits
from atlas_sandbox.outcomes import InvalidRun, SandboxBusy, tail
from atlas_sandbox.runner import Runner, RunnerConfig, RunResult, SandboxFailure
from atlas_sandbox.settings import Settings


class Executor:
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
                raise SandboxFailure(f"the sandbox self-test failed: {tail(res.stderr)}")
        finally:
            self.dirs.remove(d)

    @contextmanager
    def admit(self) -> Iterator[None]:
        if self.active >= self.workers + self.settings.sandbox_queue_limit:
            raise SandboxBusy(f"all {self.workers} sandbox workers are busy and {self.settings.sandbox_queue_limit} "
                              "requests are waiting; retry shortly")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

    def toolchain(self, language: str, field: str = "language") -> Toolchain:
        lang = lookup(language)
        if lang is None:
            raise InvalidRun(f"{field}: unknown language {language!r}; known: "
                             + ", ".join(sorted(self.toolchains)))
        tc = self.toolchains.get(lang.name)
        if tc is None:
            raise InvalidRun(f"{field}: {lang.name} is not installed on this sandbox host; available: "
                             + ", ".join(sorted(self.toolchains)))
        return tc

    async def execute(self, req: ExecuteRequest, limits: Limits) -> ExecuteResponse:
        return await run_execute(self, req, limits)

    async def judge(self, req: JudgeRequest, limits: Limits) -> JudgeResponse:
        return await run_judge(self, req, limits)

    async def run(self, command: list[str], workdir: Path, limits: Limits, **kwargs: Any) -> RunResult:
        """One sandboxed run on a worker thread (``kwargs`` as for ``Runner.run``)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: self.runner.run(command, workdir, limits, **kwargs))

    def workdir(self, tc: Toolchain, code: str, extra: dict[str, str], files: dict[str, str] | None) -> Path:
        """A fresh work directory holding the program, the harness files ``extra`` and the caller's ``files``."""
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

    async def compile(self, tc: Toolchain, d: Path, budget_s: float) -> tuple[str | None, str | None]:
        """(error type, compiler output) of the compile step; (None, None) when it passed or there is none."""
        if tc.language.compile is None:
            return None, None
        root = self.runner.work_root(d)
        argv = tc.argv(tc.language.compile, f"{root}/{tc.language.source}", f"{root}/{EXE}")
        limits = replace(self.compile_limits, timeout_s=min(self.compile_limits.timeout_s, max(budget_s, 0.1)))
        res = await self.run(argv, d, limits, writable=True, cwd_work=True, address_space=False)
        if res.exit_code == 0 and not (res.timed_out or res.output_truncated):
            return None, None
        if res.exit_code == UNREADABLE and tc.language.name == "python":
            raise SandboxFailure(f"the run could not read its own source: {tail(res.stderr, 300)}")
        output = tail(res.stderr + res.stdout, 8000)
        if res.timed_out:
            output = f"the compile step exceeded {limits.timeout_s:g} s"
        return tc.language.syntax_error, output or f"compiler exit code {res.exit_code}"
