"""Per-run cgroups (v1 memory and pids controllers) where the host lets this process create them.

Each run gets its own memory and pids cgroup under the service's own ones, so a run's processes, however many
it forks, are limited, measured (peak memory, OOM kills) and killed together, and a cgroup that cannot be
emptied is reported instead of silently leaking. Hosts without writable v1 controllers run without them (the
rlimits still hold) and the service says so at start.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger("atlas.sandbox")
CONTROLLERS = ("memory", "pids")


def _mounts() -> dict[str, Path]:
    """Mount point of each v1 controller."""
    found: dict[str, Path] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, options = right.split()[:3]
            if fstype != "cgroup":
                continue
            for name in options.split(","):
                if name in CONTROLLERS:
                    found[name] = Path(left.split()[4])
    return found


def _own_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            for name in names.split(","):
                if name in CONTROLLERS:
                    paths[name] = path
    return paths


class RunGroup:
    """One run's memory and pids cgroups."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs

    def add(self, pid: int) -> None:
        for d in self.dirs.values():
            (d / "cgroup.procs").write_text(str(pid))

    def peak_bytes(self) -> int | None:
        try:
            return int((self.dirs["memory"] / "memory.max_usage_in_bytes").read_text())
        except (OSError, ValueError):
            return None

    def oom_killed(self) -> bool:
        try:
            text = (self.dirs["memory"] / "memory.oom_control").read_text()
        except OSError:
            return False
        fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(fields.get("oom_kill", "0")) > 0 or fields.get("under_oom") == "1"

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.dirs["pids"] / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def close(self) -> bool:
        """Kill whatever is left, then remove the cgroups. False if a process could not be reaped."""
        deadline = time.monotonic() + 2.0
        while (left := self.pids()) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)
        emptied = not self.pids()
        for d in self.dirs.values():
            try:
                d.rmdir()
            except OSError as exc:
                log.error("cannot remove cgroup %s: %s", d, exc)
                emptied = False
        return emptied


class Cgroups:
    """Creates run groups under ``<own cgroup>/atlas-sandbox-<pid>`` in the memory and pids hierarchies."""

    def __init__(self, bases: dict[str, Path]) -> None:
        self.bases = bases
        self._ids = itertools.count()
        self.swap_limit = (bases["memory"] / "memory.memsw.limit_in_bytes").exists()

    @classmethod
    def open(cls) -> Cgroups | None:
        """None, with the reason logged, where v1 memory and pids cgroups cannot be created."""
        try:
            mounts, own = _mounts(), _own_paths()
            if set(mounts) != set(CONTROLLERS) or set(own) != set(CONTROLLERS):
                log.warning("cgroup limits disabled: no cgroup v1 memory and pids hierarchies on this host")
                return None
            bases = {c: mounts[c] / own[c].lstrip("/") / f"atlas-sandbox-{os.getpid()}" for c in CONTROLLERS}
            for d in bases.values():
                d.mkdir(exist_ok=True)
            return cls(bases)
        except OSError as exc:
            log.warning("cgroup limits disabled: %s", exc)
            return None

    def create(self, memory_bytes: int, processes: int) -> RunGroup:
        name = f"run-{next(self._ids)}"
        dirs = {c: base / name for c, base in self.bases.items()}
        made: list[Path] = []
        try:
            for d in dirs.values():
                d.mkdir()
                made.append(d)
            mem = dirs["memory"]
            (mem / "memory.limit_in_bytes").write_text(str(memory_bytes))
            if self.swap_limit:  # memory+swap equal to memory: the run cannot swap its way past the limit
                (mem / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
            (dirs["pids"] / "pids.max").write_text(str(processes))
        except OSError:
            for d in made:
                d.rmdir()
            raise
        return RunGroup(dirs)

    def close(self) -> None:
        for d in self.bases.values():
            try:
                for child in d.iterdir():
                    if child.is_dir():
                        child.rmdir()
                d.rmdir()
            except OSError as exc:
                log.warning("cannot remove cgroup %s: %s", d, exc)
