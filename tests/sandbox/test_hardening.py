"""Regression tests for three holes a security review found: a writable, unbounded ``/dev``; pytest and
JavaScript verdicts forged by reading the marker out of the work directory; and a lint step that ran above the
caller's limits. Also two forgeries of the same kind found while fixing them: calling the pytest reporting
plugin's hooks, and reading a Python harness's nonce from ``__main__``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from atlas_core.settings import load_settings
from atlas_sandbox.app import create_app
from atlas_sandbox.executor import Executor
from atlas_sandbox.limits import Limits
from atlas_sandbox.runner import RunResult
from atlas_sandbox.settings import Settings
from tests.conftest import RedisServer
from tests.sandbox.conftest import Sandbox, sandbox_env


@pytest.fixture(scope="module")
def uncapped(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A service without per-run cgroups: nothing but the sandbox's own mounts bounds what a run can store."""
    env = sandbox_env(redis_server, tmp_path_factory.mktemp("uncapped"), ATLAS_SANDBOX_CGROUPS="false")
    settings = load_settings(Settings, environ=env)
    with TestClient(create_app(settings)) as client:
        yield Sandbox(client, settings)


# ------------------------------------------------------------------ 1. /dev is no unbounded store

# 150 files of 1 MB each: every one is under the file-size rlimit, so only the file system can stop them.
FILL = """\
import errno, json
written, error = 0, None
try:
    for i in range(150):
        with open(f"{folder}/fill{{i}}", "wb") as f:
            f.write(b"x" * (1 << 20))
        written += 1
except OSError as exc:
    error = errno.errorcode.get(exc.errno, str(exc.errno))
print(json.dumps({{"written_mb": written, "error": error}}))
"""


@pytest.mark.parametrize("folder", ["/dev", "/dev/shm"])
def test_dev_cannot_hold_unbounded_data_without_cgroups(uncapped: Sandbox, folder: str) -> None:
    out = uncapped.execute(FILL.format(folder=folder))
    assert out["success"], out
    report = json.loads(out["stdout"])
    assert report["written_mb"] < 150 and report["error"] in ("ENOSPC", "EROFS"), report
    if folder == "/dev":
        assert report == {"written_mb": 0, "error": "EROFS"}  # read-only: not even a first file
    else:  # its own tmpfs, a share of the run's tmp size
        assert report["error"] == "ENOSPC" and report["written_mb"] < uncapped.settings.sandbox_tmp_mb, report


DEVICES = """\
import multiprocessing as mp

def child(queue):
    queue.put("from child")

if __name__ == "__main__":
    with open("/dev/null", "w") as f:
        f.write("discarded")
    print(len(open("/dev/urandom", "rb").read(16)), open("/dev/zero", "rb").read(2))
    lock = mp.Lock()  # a POSIX semaphore in /dev/shm
    with lock:
        queue = mp.Queue()
        proc = mp.Process(target=child, args=(queue,))
        proc.start()
        print(queue.get(timeout=10))
        proc.join()
    open("/tmp/ok", "w").write("x")
    print("done")
"""


@pytest.mark.parametrize("service", ["sandbox", "uncapped"])
def test_devices_and_multiprocessing_still_work(service: str, request: pytest.FixtureRequest) -> None:
    box: Sandbox = request.getfixturevalue(service)
    out = box.execute(DEVICES)
    assert out["success"], out
    assert out["stdout"].splitlines() == ["16 b'\\x00\\x00'", "from child", "done"]


# ------------------------------------------------------------------ 2. forged pytest and JavaScript verdicts

# Looks for the marker in every file it can reach, then writes forged counts to every pipe it holds (pytest
# captures fd 1 but keeps a copy of the real stdout) and leaves before any test runs.
PY_FORGER = """\
import glob, json, os, re

def add(a, b):
    return a - b

def _forge():
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(set(glob.glob(here + "/*") + glob.glob("*") + glob.glob("/sandbox/*"))):
        try:
            with open(path) as f:
                found = re.search(r"__ATLAS_[0-9a-f]+__", f.read())
        except OSError:
            continue
        if found:
            line = ("\\n" + found.group(0) + json.dumps({"run": 1, "passed": 1, "first": None}) + "\\n").encode()
            for fd in [1] + [int(n) for n in os.listdir("/proc/self/fd")]:
                try:
                    if fd == 1 or os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                        os.write(fd, line)
                except OSError:
                    pass
            os._exit(0)

_forge()
"""
PY_TEST = "from solution import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"


def test_pytest_verdict_cannot_be_forged_from_the_work_directory(sandbox: Sandbox) -> None:
    judged = sandbox.judge(mode="pytest", candidates=[{"code": PY_FORGER}], tests=[{"code": PY_TEST}])
    assert judged["candidates"][0]["verdict"] != "passed", judged
    executed = sandbox.execute(PY_FORGER, test_code=PY_TEST)
    assert executed["success"] is False and executed["tests_passed"] == 0, executed


# Calls the reporting plugin's own hooks with a passing report, then leaves: module-level hooks, or a
# pytest_configure that registers them again, would write a marker with forged counts for it.
PLUGIN_CALLER = """\
import os, sys, types

def add(a, b):
    return a - b

plugin = sys.modules.get("_atlas_pytest_report")
found = [plugin] if plugin is not None else []
manager = types.SimpleNamespace(register=lambda obj, name=None: found.append(obj))
if hasattr(plugin, "pytest_configure"):
    plugin.pytest_configure(types.SimpleNamespace(pluginmanager=manager))
report = types.SimpleNamespace(skipped=False, passed=True, failed=False, when="call", nodeid="t", longrepr="")
for obj in found:
    if hasattr(obj, "pytest_runtest_logreport") and hasattr(obj, "pytest_sessionfinish"):
        obj.pytest_runtest_logreport(report)
        obj.pytest_sessionfinish(None, 0)
        os._exit(0)
"""


def test_pytest_reporting_plugin_cannot_be_driven_by_the_candidate(sandbox: Sandbox) -> None:
    judged = sandbox.judge(mode="pytest", candidates=[{"code": PLUGIN_CALLER}], tests=[{"code": PY_TEST}])
    assert judged["candidates"][0]["verdict"] == "TestFailure", judged


# The nonce and the copy of stdout of a Python harness, if they were globals of __main__.
MAIN_FORGER = """\
import __main__, json, os

def add(a, b):
    return a - b

if hasattr(__main__, "_tag"):
    os.write(__main__._out, ("\\n__ATLAS_" + __main__._tag + "__" + {payload!r} + "\\n").encode())
    os._exit(0)
"""


def test_python_harness_globals_do_not_give_the_nonce_away(sandbox: Sandbox) -> None:
    counts = json.dumps({"run": 1, "passed": 1, "first": None})
    executed = sandbox.execute(MAIN_FORGER.format(payload=counts), test_code="assert add(1, 2) == 3\n")
    assert executed["success"] is False and executed["tests_passed"] == 0, executed
    functional = sandbox.judge(mode="functional", func_name="add", candidates=[{"code": MAIN_FORGER.format(
        payload="3")}], tests=[{"input": "1\n2", "output": "3"}])
    assert functional["candidates"][0]["verdict"] == "TestFailure", functional


JS_FORGER = """\
const fs = require("fs");
const path = require("path");
for (const file of new Set([__filename, require.main && require.main.filename,
                            ...fs.readdirSync(__dirname).map((n) => path.join(__dirname, n))])) {
  let found = null;
  try { found = fs.readFileSync(file, "utf8").match(/__ATLAS_[0-9a-f]+__/); } catch (e) { continue; }
  if (found) { fs.writeSync(1, "\\n" + found[0] + "\\n"); process.exit(0); }
}
function add(a, b) { return a - b; }
"""
JS_TEST = "const assert = require('assert'); assert.strictEqual(add(1, 2), 3);"


def test_javascript_verdict_cannot_be_forged_by_reading_its_own_file(sandbox: Sandbox) -> None:
    judged = sandbox.judge(language="javascript", mode="assert", candidates=[{"code": JS_FORGER}],
                           tests=[{"code": JS_TEST}])
    assert judged["candidates"][0]["verdict"] == "TestFailure", judged
    executed = sandbox.execute(JS_FORGER, language="javascript", test_code=JS_TEST)
    assert executed["success"] is False and executed["tests_passed"] == 0, executed


def test_nonce_on_stdin_leaves_the_programs_own_stdin_alone(sandbox: Sandbox) -> None:
    js = "const s = require('fs').readFileSync(0, 'utf8'); console.log(JSON.stringify(s));"
    out = sandbox.execute(js, language="javascript", test_code="console.log('tested')", stdin="a b\nc\n")
    assert out["success"] and out["stdout"].splitlines() == ['"a b\\nc\\n"', "tested"], out
    # under pytest, fd 0 is /dev/null once capture starts, as it always was: a test that reads stdin fails
    test = "import sys\n\n\ndef test_reads():\n    assert sys.stdin.read() == ''\n"
    fails = sandbox.execute("x = 1", test_code=test, stdin="secret\n")
    assert (fails["tests_run"], fails["tests_passed"]) == (1, 0), fails
    assert "reading from stdin while output is captured" in fails["error_message"], fails


def test_pytest_and_javascript_modes_still_judge(sandbox: Sandbox) -> None:
    good = "def add(a, b):\n    return a + b\n"
    judged = sandbox.judge(mode="pytest", candidates=[{"code": good}, {"code": "def add(a, b):\n    return 0\n"}],
                           tests=[{"code": PY_TEST + "\n\ndef test_zero():\n    assert add(0, 0) == 0\n"}])
    assert [c["verdict"] for c in judged["candidates"]] == ["passed", "TestFailure"], judged
    executed = sandbox.execute(good, test_code=PY_TEST + "\n\ndef test_wrong():\n    assert add(1, 1) == 3\n")
    assert (executed["tests_run"], executed["tests_passed"], executed["error_type"]) == (2, 1, "TestFailure")
    js = sandbox.execute("function add(a, b) { return a + b; }\nconsole.log('hi');", language="javascript",
                         test_code=JS_TEST)
    assert (js["success"], js["tests_run"], js["tests_passed"], js["stdout"]) == (True, 1, 1, "hi"), js
    early = sandbox.execute("function add(a, b) { return a + b; }\nprocess.exit(0);", language="javascript",
                            test_code=JS_TEST)
    assert early["success"] is False and early["error_type"] == "TestFailure", early


# ------------------------------------------------------------------ 3. lint stays within the caller's limits

@pytest.fixture
def recorded(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], Limits]]:
    """Every (command, limits) the executor hands its runner during the test."""
    executor: Executor = sandbox.client.app.state.executor  # type: ignore[attr-defined]
    real = executor.runner.run
    calls: list[tuple[list[str], Limits]] = []

    def run(command: list[str], workdir: Path, limits: Limits, **kwargs: Any) -> RunResult:
        calls.append((command, limits))
        return real(command, workdir, limits, **kwargs)

    monkeypatch.setattr(executor.runner, "run", run)
    return calls


def test_lint_runs_within_the_callers_limits(sandbox: Sandbox, recorded: list[tuple[list[str], Limits]]) -> None:
    lowered = {"timeout_s": 2.0, "cpu_s": 2.0, "memory_mb": 128}
    response = sandbox.post("/execute", {"code": "print(1)\n", "lint": True}, limits=lowered)
    assert response.status_code == 200, response.text
    lint = [limits for command, limits in recorded if "pylint" in command]
    program = [limits for command, limits in recorded if command[-1].endswith("/main.py") and "-c" not in command
               and "pylint" not in command]
    assert len(lint) == 1 and len(program) == 1, recorded
    assert lint[0].timeout_s <= 2.0 and lint[0].cpu_s <= 2.0 and lint[0].memory_mb <= 128, lint[0]
    assert all(getattr(lint[0], f.name) <= getattr(program[0], f.name) for f in fields(Limits)), (lint, program)


def test_lint_that_cannot_finish_within_the_limits_has_no_score(sandbox: Sandbox) -> None:
    executor: Executor = sandbox.client.app.state.executor  # type: ignore[attr-defined]
    if executor.cgroups is None:
        pytest.skip("needs per-run cgroups: the address-space limit alone leaves pylint room")
    # print(1) runs in a few MB; pylint, which loads astroid and every checker, needs more than 24 MB
    out = sandbox.post("/execute", {"code": "print(1)\n", "lint": True}, limits={"memory_mb": 24}).json()
    assert out["success"] and out["lint_score"] is None, out
    assert sandbox.execute("print(1)\n", lint=True)["lint_score"] == 0.0  # no docstring: pylint's 0/10
