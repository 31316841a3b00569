"""Process identity and termination. A pid is only trusted together with its start time, so a recycled pid
never gets a signal meant for a process that is gone."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _stat(pid: int | str) -> list[str] | None:
    """Fields 3 onwards of /proc/PID/stat (state, ppid, pgrp, ...), or None if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its closing one.
    return stat[stat.rindex(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone or a zombie."""
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":  # a zombie has finished; only its parent's wait() is left
        return None
    return int(fields[19])


def alive(pid: int, started: int | None) -> bool:
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def group_alive(pgid: int) -> bool:
    """Whether any live process is left in a process group."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_groups(pgids: list[int], timeout_s: float) -> None:
    """SIGTERM every group, wait up to ``timeout_s`` for all of them to empty, then SIGKILL what is left."""
    for pgid in pgids:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(group_alive(g) for g in pgids):
        time.sleep(0.1)
    for pgid in pgids:
        if group_alive(pgid):
            signal_group(pgid, signal.SIGKILL)


def die_with_parent(parent: int) -> None:
    """In a child before exec: get SIGTERM when the supervisor dies, even by SIGKILL, so nothing is orphaned.
    If the supervisor died before the request took effect, exit now instead of running unsupervised."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
