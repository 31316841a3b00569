"""What one sandboxed run gave, in the terms of a verdict, and the errors a request to run something raises."""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass

from atlas_sandbox import programs
from atlas_sandbox.compare import MEMORY_WORDS
from atlas_sandbox.languages import Toolchain
from atlas_sandbox.limits import Limits
from atlas_sandbox.runner import RunResult

SHOWN = 2000  # characters of input, expected and actual output a failure report keeps


class SandboxBusy(Exception):
    """503: every worker is busy and the queue is full."""


class InvalidRun(ValueError):
    """400 with a message naming the field: the request asks for something this sandbox cannot run."""


@dataclass
class RunOutcome:
    """One test run's result; ``error_type`` None means the test passed (or, collecting outputs, ran to the end)."""

    error_type: str | None
    got: str | None = None
    error: str | None = None
    skipped: bool = False
    time_ms: float = 0.0
    peak_kb: int | None = None
    digest: str | None = None  # collect_outputs: the output as the comparison sees it (compare.*_digest)
    shown: str = ""  # collect_outputs: the start of what the test printed or returned


def text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def cut(value: str | None) -> tuple[str | None, bool]:
    """``value`` cut to SHOWN characters, and whether it was."""
    if value is None or len(value) <= SHOWN:
        return value, False
    return value[:SHOWN], True


def tail(raw: bytes, size: int = SHOWN) -> str:
    return text(raw[-size:]).strip()


def classify(res: RunResult, limits: Limits) -> tuple[str | None, str | None]:
    """The error type of a finished run (None when it exited 0 within every limit), and what to say about it."""
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
        return "RuntimeError", f"killed by signal {name}: {tail(res.stderr, 500)}".rstrip(": ")
    if res.exit_code != 0:
        last = tail(res.stderr, 1000)
        return "RuntimeError", last or f"exit code {res.exit_code}"
    return None, None


def assertion_failed(err: str | None, res: RunResult) -> bool:
    """A test program that died of an AssertionError failed its test; it did not crash."""
    return err == "RuntimeError" and b"AssertionError" in res.stderr[-4096:]


def pytest_argv(tc: Toolchain, root: str, test_file: str) -> list[str]:
    # python -m puts the cwd (the work directory: these runs use cwd_work) first on sys.path, where -p finds
    # the reporting plugin
    return [tc.paths["python3"], "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
            programs.PYTEST_PLUGIN, f"--rootdir={root}", f"{root}/{test_file}"]


def pytest_files(code: str, tests: dict[str, str]) -> dict[str, str]:
    return {"solution.py": code, f"{programs.PYTEST_PLUGIN}.py": programs.pytest_plugin(), **tests}
