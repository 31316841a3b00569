"""The supervisor restarts what crashes and ``atlas down`` leaves no process behind, stubborn ones included."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas_cli import supervisor
from atlas_cli.plan import ServiceSpec, save_plan
from atlas_cli.process import start_time
from atlas_cli.runner import down, running, spawn_supervisor

# A child that ignores SIGTERM and leaves a grandchild in its process group: the worst case for `down`.
STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "time.sleep(600)'])\n"
    "time.sleep(600)\n"
)


def spec(name: str, code: str, state_dir: Path) -> ServiceSpec:
    env = {"PATH": os.environ["PATH"], "ATLAS_STATE_DIR": str(state_dir)}
    return ServiceSpec(name=name, argv=[sys.executable, "-c", code], env=env, host="127.0.0.1", port=0,
                       url="-", probe="http", probe_url="-")


def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def pids(state_dir: Path) -> dict[str, int | None]:
    live = running(state_dir)
    return {name: record.get("pid") for name, record in (live.services if live else {}).items()}


def processes_of(state_dir: Path) -> list[int]:
    """Every live process whose environment names this state directory."""
    marker = f"ATLAS_STATE_DIR={state_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0") and start_time(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_restart_on_crash_and_clean_stop(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    save_plan(state_dir, [spec("steady", "import time; time.sleep(600)", state_dir),
                          spec("stubborn", STUBBORN, state_dir)], stop_timeout_s=1.0)
    supervisor = spawn_supervisor(state_dir)
    try:
        wait_for(lambda: all(pids(state_dir).get(n) for n in ("steady", "stubborn")))
        wait_for(lambda: len(processes_of(state_dir)) == 3)  # steady, stubborn and its grandchild
        first = pids(state_dir)["steady"]
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: pids(state_dir).get("steady") not in (None, first))
        state = json.loads((state_dir / "run" / "state.json").read_text())
        assert state["services"]["steady"]["restarts"] == 1
        assert state["services"]["steady"]["last_exit"] == -signal.SIGKILL
    finally:
        stopped = down(state_dir)
    assert stopped == 3  # the supervisor and its two services
    assert processes_of(state_dir) == []
    assert start_time(supervisor) is None
    assert running(state_dir) is None
    assert not (state_dir / "run" / "state.json").exists()


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    save_plan(state_dir, [spec("steady", "import time; time.sleep(600)", state_dir)], stop_timeout_s=1.0)
    supervisor = spawn_supervisor(state_dir)
    wait_for(lambda: pids(state_dir).get("steady"))
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: processes_of(state_dir) == [], timeout=10)


def test_logs_rotate_under_a_writer_that_keeps_appending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "MAX_LOG_BYTES", 100)
    log = tmp_path / "svc.log"
    with open(log, "ab") as writer:  # as a service's stdout: O_APPEND
        writer.write(b"x" * 150)
        writer.flush()
        supervisor.rotate(log)
        writer.write(b"after\n")
        writer.flush()
    assert (tmp_path / "svc.log.1").read_bytes() == b"x" * 150
    assert log.read_bytes() == b"after\n"
    supervisor.rotate(log)  # small files stay
    assert log.read_bytes() == b"after\n"
