"""The supervisor ``atlas up`` leaves running: ``python -m atlas_cli.supervisor STATE_DIR``.

It starts every process of ``run/plan.json`` in its own process group, with output to ``logs/NAME.log``,
restarts one that exits (backing off, and giving up after repeated crashes), records pids in
``run/state.json``, and on SIGTERM stops them all: services first, Redis last, SIGKILL after the stop timeout.
Children get SIGTERM if the supervisor itself dies, so no process outlives it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from atlas_cli.plan import ServiceSpec, clear_run_files, load_plan, log_dir, run_dir, write_private
from atlas_cli.process import die_with_parent, start_time, stop_groups

log = logging.getLogger("atlas.supervisor")

MAX_LOG_BYTES = 10 * 1024 * 1024
CRASH_WINDOW_S = 60.0
MAX_CRASHES = 5  # within the window; then the service is marked failed instead of restarted forever
POLL_S = 0.2
ROTATE_EVERY = 50  # polls: check log sizes every 10 s


def rotate(path: Path) -> None:
    """Past MAX_LOG_BYTES, keep one previous generation (``.log.1``). Copy, then truncate: the running
    process writes with O_APPEND, so it simply continues at the start of the emptied file."""
    try:
        if path.stat().st_size <= MAX_LOG_BYTES:
            return
        shutil.copyfile(path, path.with_suffix(".log.1"))
        os.truncate(path, 0)
    except OSError:
        return


@dataclass
class Child:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes] | None = None
    status: str = "starting"
    restarts: int = 0
    last_exit: int | None = None
    next_start: float = 0.0
    crashes: deque[float] = field(default_factory=deque)

    def record(self) -> dict[str, object]:
        pid = self.proc.pid if self.proc and self.proc.poll() is None else None
        return {"pid": pid, "started": start_time(pid) if pid else None, "status": self.status,
                "restarts": self.restarts, "last_exit": self.last_exit}


class Supervisor:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        specs, self.stop_timeout_s = load_plan(state_dir)
        self.children = [Child(spec) for spec in specs]
        self.stopping = False

    def _start(self, child: Child) -> None:
        for path, text in child.spec.files.items():
            write_private(Path(path), text)
        logs = log_dir(self.state_dir)
        logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        log_path = logs / f"{child.spec.name}.log"
        rotate(log_path)
        if child.spec.name == "redis":
            (self.state_dir / "redis").mkdir(mode=0o700, exist_ok=True)
        with open(log_path, "ab") as output:
            child.proc = subprocess.Popen(
                child.spec.argv, env=child.spec.env, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, cwd=self.state_dir, start_new_session=True,
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
            )
        child.status = "running"
        log.info("started %s (pid %d)", child.spec.name, child.proc.pid)

    def _reap(self, child: Child, now: float) -> None:
        """Handle a child that exited on its own: schedule a restart, or give up after repeated crashes."""
        assert child.proc is not None
        child.last_exit = child.proc.returncode
        stop_groups([child.proc.pid], timeout_s=1.0)  # anything it left behind in its group
        child.proc = None
        child.crashes.append(now)
        while child.crashes and now - child.crashes[0] > CRASH_WINDOW_S:
            child.crashes.popleft()
        if len(child.crashes) >= MAX_CRASHES:
            child.status = "failed"
            log.error("%s exited %d times within %.0fs; not restarting", child.spec.name, MAX_CRASHES,
                      CRASH_WINDOW_S)
            return
        delay = min(2.0 ** (len(child.crashes) - 1), 30.0)
        child.status = "restarting"
        child.next_start = now + delay
        log.warning("%s exited with %s; restarting in %.0fs", child.spec.name, child.last_exit, delay)

    def write_state(self) -> None:
        state = {"supervisor": {"pid": os.getpid(), "started": start_time(os.getpid())},
                 "services": {c.spec.name: c.record() for c in self.children}}
        write_private(run_dir(self.state_dir) / "state.json", json.dumps(state, indent=2))

    def _stop_all(self) -> None:
        # Services first (in parallel), Redis last so they can still flush what they hold.
        for names in ([c for c in self.children if c.spec.name != "redis"],
                      [c for c in self.children if c.spec.name == "redis"]):
            pgids = [c.proc.pid for c in names if c.proc is not None]
            stop_groups(pgids, self.stop_timeout_s)
            for child in names:
                if child.proc is not None:
                    child.proc.wait()
                    child.proc = None
                child.status = "stopped"
        log.info("all services stopped")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)
        try:
            for child in self.children:
                if self.stopping:
                    break
                self._start(child)
            self.write_state()
            polls = 0
            while not self.stopping:
                now = time.monotonic()
                polls += 1
                if polls % ROTATE_EVERY == 0:
                    for child in self.children:
                        rotate(log_dir(self.state_dir) / f"{child.spec.name}.log")
                changed = False
                for child in self.children:
                    if child.proc is not None and child.proc.poll() is not None:
                        self._reap(child, now)
                        changed = True
                    elif child.status == "restarting" and now >= child.next_start:
                        child.restarts += 1
                        self._start(child)
                        changed = True
                if changed:
                    self.write_state()
                time.sleep(POLL_S)
        finally:
            self._stop_all()
            clear_run_files(self.state_dir)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.umask(0o077)  # logs, Redis files and the database hold user data: owner-only, inherited by children
    state_dir = Path(sys.argv[1])
    supervisor = Supervisor(state_dir)
    # Detach: the process that `atlas up` started exits at once, so the supervisor is nobody's child and
    # outlives the command (or test) that started it without becoming a zombie there.
    if os.fork() > 0:
        os._exit(0)
    os.setsid()  # its own session and process group, so `atlas down` can signal it as a group
    supervisor.write_state()  # before the pid file: `atlas up` must never pair a new pid with an old state
    write_private(run_dir(state_dir) / "supervisor.pid", f"{os.getpid()} {start_time(os.getpid())}\n")
    supervisor.run()


if __name__ == "__main__":
    main()
