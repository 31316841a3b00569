"""Per-run cgroups (v1 memory and pids controllers) where the host lets this process create them.

Each run gets a memory and pids cgroup under the service's own ones, so a run's processes, however many it
forks, are limited, measured (peak memory, OOM kills) and killed together, and a cgroup that cannot be emptied
is reported instead of silently leaking. Emptied cgroups are reused rather than made and removed per run.
Moving a run's first process into a v1 cgroup waits for an RCU grace period (several ms on these hosts;
ATLAS_SANDBOX_CGROUPS=false trades the cgroup for that time). Hosts without writable v1 controllers run
without them (the rlimits still hold) and the service says so at start.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import secrets
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


def _kill_members(group: Path, limit_s: float = 2.0) -> bool:
    """SIGKILL every process in ``group`` until none is left; False if some survived ``limit_s``."""
    procs = group / "cgroup.procs"
    deadline = time.monotonic() + limit_s
    while (left := procs.read_text().split()) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.005)
    return not procs.read_text().split()


def _remove_stale(parent: Path) -> None:
    """Remove the run groups a sandbox service that died left behind (killing anything still in them)."""
    for base in parent.glob("atlas-sandbox-*"):
        try:
            pid = int(base.name.split("-")[2])
            os.kill(pid, 0)
            continue  # its service is alive
        except (IndexError, ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        for group in [d for d in base.iterdir() if d.is_dir()]:
            with contextlib.suppress(OSError):
                _kill_members(group)
                group.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()
        log.warning("removed cgroups left by a stopped sandbox service: %s", base)


class RunGroup:
    """One run's memory and pids cgroups."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs
        self.swap_limit = (dirs["memory"] / "memory.memsw.limit_in_bytes").exists()
        self._oom_kills = 0
        self._limits = (0, 0)

    def _oom_fields(self) -> dict[str, str]:
        text = (self.dirs["memory"] / "memory.oom_control").read_text()
        return dict(line.split() for line in text.splitlines() if len(line.split()) == 2)

    def begin(self, memory_bytes: int, processes: int) -> None:
        """Set this run's limits and reset the peak and OOM counters a previous run left."""
        mem = self.dirs["memory"]
        if self._limits != (memory_bytes, processes):
            self._set_limits(memory_bytes, processes)
            self._limits = (memory_bytes, processes)
        (mem / "memory.max_usage_in_bytes").write_text("0")
        self._oom_kills = int(self._oom_fields().get("oom_kill", "0"))

    def _set_limits(self, memory_bytes: int, processes: int) -> None:
        mem = self.dirs["memory"]
        limit, swap = mem / "memory.limit_in_bytes", mem / "memory.memsw.limit_in_bytes"
        # memory+swap equal to memory: a run cannot swap its way past the limit. The kernel wants
        # limit <= memsw at every step, so the order depends on the direction.
        order = [limit, swap] if memory_bytes <= int(limit.read_text()) else [swap, limit]
        for path in order:
            if path is limit or self.swap_limit:
                path.write_text(str(memory_bytes))
        (self.dirs["pids"] / "pids.max").write_text(str(processes))

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
            fields = self._oom_fields()
        except OSError:
            return False
        return int(fields.get("oom_kill", "0")) > self._oom_kills or fields.get("under_oom") == "1"

    def empty(self) -> bool:
        """Kill whatever is left. False if a process could not be reaped."""
        try:
            return _kill_members(self.dirs["pids"])
        except OSError:
            return False

    def remove(self) -> None:
        for d in self.dirs.values():
            try:
                d.rmdir()
            except OSError as exc:
                log.error("cannot remove cgroup %s: %s", d, exc)


class Cgroups:
    """Creates run groups under ``<own cgroup>/atlas-sandbox-<pid>-<random>`` in the memory and pids
    hierarchies."""

    def __init__(self, bases: dict[str, Path]) -> None:
        self.bases = bases
        self._ids = itertools.count()
        self._free: queue.SimpleQueue[RunGroup] = queue.SimpleQueue()

    @classmethod
    def open(cls) -> Cgroups | None:
        """None, with the reason logged, where v1 memory and pids cgroups cannot be created."""
        try:
            mounts, own = _mounts(), _own_paths()
            if set(mounts) != set(CONTROLLERS) or set(own) != set(CONTROLLERS):
                log.warning("cgroup limits disabled: no cgroup v1 memory and pids hierarchies on this host")
                return None
            name = f"atlas-sandbox-{os.getpid()}-{secrets.token_hex(3)}"
            parents = {c: mounts[c] / own[c].lstrip("/") for c in CONTROLLERS}
            for parent in parents.values():
                _remove_stale(parent)
            bases = {c: parent / name for c, parent in parents.items()}
            for d in bases.values():
                d.mkdir(exist_ok=True)
            return cls(bases)
        except OSError as exc:
            log.warning("cgroup limits disabled: %s", exc)
            return None

    def acquire(self, memory_bytes: int, processes: int) -> RunGroup:
        """An empty run group (reused when one is free) with these limits."""
        try:
            group = self._free.get_nowait()
        except queue.Empty:
            group = self._make()
        try:
            group.begin(memory_bytes, processes)
        except OSError:
            group.remove()
            raise
        return group

    def release(self, group: RunGroup) -> bool:
        """Empty the group and keep it for the next run. False (and the group is left alone) if a process of
        the run could not be killed."""
        if not group.empty():
            log.error("a sandboxed process could not be killed; its cgroup %s is left in place", group.dirs)
            return False
        self._free.put(group)
        return True

    def _make(self) -> RunGroup:
        name = f"run-{next(self._ids)}"
        dirs = {c: base / name for c, base in self.bases.items()}
        made: list[Path] = []
        try:
            for d in dirs.values():
                d.mkdir()
                made.append(d)
        except OSError:
            for d in made:
                d.rmdir()
            raise
        return RunGroup(dirs)

    def idle(self) -> list[Path]:
        """Run cgroups that exist but hold no process (what a caller checks after runs)."""
        return [d for base in self.bases.values() for d in base.iterdir() if d.is_dir()]

    def close(self) -> None:
        for d in self.bases.values():
            try:
                for child in d.iterdir():
                    if child.is_dir():
                        child.rmdir()
                d.rmdir()
            except OSError as exc:
                log.warning("cannot remove cgroup %s: %s", d, exc)
