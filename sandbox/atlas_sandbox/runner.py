"""Runs one command in a fresh bubblewrap sandbox with limits, and reports what happened.

One run: ``bwrap <namespaces, read-only system, tmpfs /tmp, work dir> prlimit <rlimits> -- command``, started
as the run uid when the service is root. bwrap is started blocked (``--block-fd``); its sandbox child's pid
(``--info-fd``) goes into the run's cgroups before the command may start, so nothing the program forks
escapes them. On timeout,
output flood or the end of the run, bwrap is killed, which tears the pid namespace down, and the cgroup is
emptied and removed: no process outlives its run.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from atlas_sandbox.cgroups import Cgroups, RunGroup
from atlas_sandbox.languages import RUNTIME_PATH
from atlas_sandbox.limits import Limits

log = logging.getLogger("atlas.sandbox")

INSIDE_WORK = "/sandbox"
INSIDE_TMP = "/tmp"  # noqa: S108 - a private tmpfs inside the sandbox, not the host's /tmp
INSIDE_SHM = "/dev/shm"  # noqa: S108 - POSIX semaphores (multiprocessing's locks and queues) live there
SHM_SHARE = 8  # /dev/shm is a private tmpfs of this fraction of the /tmp size
INSIDE_UID = 65534
# Read-only parts of /etc some runtimes need (dynamic loader cache, alternatives symlinks, time zone data).
ETC_ENTRIES = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime")
ENV = {
    "PATH": RUNTIME_PATH, "HOME": INSIDE_TMP, "TMPDIR": INSIDE_TMP, "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
}
START_TIMEOUT_S = 5.0
PR_SET_CHILD_SUBREAPER = 36


class SandboxFailure(Exception):
    """The sandbox itself failed (never the program): reported as SandboxError / 5xx."""


@dataclass
class RunResult:
    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    wall_ms: float
    cpu_ms: float
    peak_memory_kb: int | None
    timed_out: bool = False
    output_truncated: bool = False
    oom: bool = False
    cpu_exceeded: bool = False
    file_too_large: bool = False
    cancelled: bool = False  # stopped by the caller (another candidate passed), not by a limit

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.output_truncated or self.oom)


@dataclass(frozen=True)
class RunnerConfig:
    isolation: str = "bwrap"  # or "none": development only, no isolation at all
    run_uid: int = 65534  # host uid runs drop to when the service is root
    tmp_mb: int = 64
    bwrap: str = "bwrap"
    seccomp: Path | None = None


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for entry in ETC_ENTRIES:
        args += ["--ro-bind-try", f"/etc/{entry}", f"/etc/{entry}"]
    return args


def become_subreaper() -> None:
    """Orphans of this process's children (a sandbox's namespace init, when bwrap is killed on a timeout) are
    re-parented here instead of to the host's pid 1, which in a container may never reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("cannot become a child subreaper (errno %d); killed runs may leave zombies", ctypes.get_errno())


def _await_namespace_end(init_pid: int, limit_s: float = 2.0) -> None:
    """Wait until the sandbox's pid-namespace init is gone or a zombie. The kernel lets that init finish only
    after every other process of its namespace has been reaped, so then nothing of the run is left."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{init_pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            # re-parented to this process (a subreaper) when bwrap was killed: reap it
            with contextlib.suppress(ChildProcessError):
                os.waitpid(init_pid, os.WNOHANG)
            return
        time.sleep(0.002)
    log.error("sandbox namespace init %d still running %.1f s after its run", init_pid, limit_s)


class Runner:
    def __init__(self, config: RunnerConfig, cgroups: Cgroups | None) -> None:
        self.config = config
        self.cgroups = cgroups
        self.isolated = config.isolation != "none"
        self._system = _system_binds()
        if self.isolated:
            # found on the service's PATH here: runs start with the sandbox's own environment, not this one
            found = shutil.which(config.bwrap)
            if found is None:
                raise SandboxFailure(f"cannot start the sandbox: {config.bwrap} is not on PATH (install bubblewrap)")
            self.config = replace(config, bwrap=found)
            become_subreaper()
        # Popen drops to the run uid itself: one exec fewer than setpriv on every run.
        self._uid = config.run_uid if self.isolated and os.geteuid() == 0 else None

    def work_root(self, workdir: Path) -> str:
        """Where the program sees its work directory."""
        return INSIDE_WORK if self.isolated else str(workdir)

    def prepare_workdir(self, workdir: Path) -> None:
        """Let the run uid write there (a compile step's output) and nobody else read it."""
        if self.isolated and os.geteuid() == 0:
            os.chown(workdir, self.config.run_uid, self.config.run_uid)
        os.chmod(workdir, 0o700)

    @staticmethod
    def _prlimit(limits: Limits, address_space: bool) -> list[str]:
        """prlimit(1) sets the run's rlimits, then execs the command. (Setting them from here with prlimit(2) on
        the blocked child would save that exec, but needs CAP_SYS_RESOURCE, which containers often drop.)"""
        cpu = max(1, math.ceil(limits.cpu_s))
        size = limits.file_mb << 20
        args = ["prlimit", f"--cpu={cpu}:{cpu + 1}", f"--fsize={size}:{size}",
                f"--nofile={limits.open_files}:{limits.open_files}",
                f"--nproc={limits.processes}:{limits.processes}", "--core=0:0"]
        if address_space:
            space = limits.address_space_bytes()
            args.append(f"--as={space}:{space}")
        return [*args, "--"]

    def _argv(self, command: list[str], workdir: Path, writable: bool, cwd_work: bool,
              fds: dict[str, int]) -> list[str]:
        if not self.isolated:
            return command
        tmp = self.config.tmp_mb << 20
        args = [self.config.bwrap, "--unshare-all", "--die-with-parent", "--new-session",
                "--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID), "--hostname", "sandbox",
                *self._system, "--proc", "/proc", "--dev", "/dev",
                "--size", str(tmp // SHM_SHARE), "--tmpfs", INSIDE_SHM,
                "--size", str(tmp), "--tmpfs", INSIDE_TMP,
                "--bind" if writable else "--ro-bind", str(workdir), INSIDE_WORK,
                # bwrap's root and /dev are tmpfs mounts without a size, whose pages no rlimit counts (nor any
                # cgroup when per-run cgroups are off): both read-only. A remount does not reach sub-mounts, so
                # the sized /tmp and /dev/shm (and a compile's work dir) stay writable, and so do the device
                # nodes, each a bind mount of its own.
                "--remount-ro", "/", "--remount-ro", "/dev",
                "--chdir", INSIDE_WORK if cwd_work else INSIDE_TMP, "--clearenv"]
        for key, value in ENV.items():
            args += ["--setenv", key, value]
        for option, fd in fds.items():
            args += [option, str(fd)]
        return [*args, "--", *command]

    def run(self, command: list[str], workdir: Path, limits: Limits, *, stdin: bytes | None = None,
            writable: bool = False, cwd_work: bool = False, address_space: bool = True,
            cancel: threading.Event | None = None) -> RunResult:
        cgroups, group = self.cgroups, None
        if cgroups is not None:
            try:
                group = cgroups.acquire(limits.memory_mb * 1024 * 1024, limits.processes)
            except OSError as exc:
                raise SandboxFailure(f"cannot set up the run's cgroup: {exc}") from exc
        try:
            return self._run(command, workdir, limits, stdin, writable, cwd_work, address_space, group,
                             cancel)
        finally:
            if cgroups is not None and group is not None:
                cgroups.release(group)

    def _run(self, command: list[str], workdir: Path, limits: Limits, stdin: bytes | None, writable: bool,
             cwd_work: bool, address_space: bool, group: RunGroup | None,
             cancel: threading.Event | None) -> RunResult:
        full = [*self._prlimit(limits, address_space), *command]
        own_fds: list[int] = []
        child_fds: list[int] = []
        fds: dict[str, int] = {}
        info_r = block_w = -1
        if self.isolated:
            info_r, info_w = os.pipe()
            block_r, block_w = os.pipe()
            own_fds += [info_r, block_w]
            child_fds += [info_w, block_r]
            fds = {"--info-fd": info_w, "--block-fd": block_r}
            if self.config.seccomp is not None:
                seccomp_fd = os.open(self.config.seccomp, os.O_RDONLY)
                child_fds.append(seccomp_fd)
                fds["--seccomp"] = seccomp_fd
        argv = self._argv(full, workdir, writable, cwd_work, fds)
        try:
            # Never the service's own environment, not even to bwrap: its init process is PID 1 inside the
            # sandbox, and the program can read /proc/1/environ (--clearenv only cleans the program's).
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, pass_fds=child_fds, start_new_session=True,
                cwd=None if self.isolated else workdir, env=ENV if self.isolated else ENV | {"HOME": str(workdir)},
                user=self._uid, group=self._uid, extra_groups=[] if self._uid is not None else None,
            )
        except OSError as exc:
            for fd in own_fds + child_fds:
                os.close(fd)
            raise SandboxFailure(f"cannot start the sandbox: {exc}") from exc
        for fd in child_fds:
            os.close(fd)
        child = None
        try:
            if self.isolated:
                child = self._release(proc, info_r, block_w, group)
            elif group is not None:
                group.add(proc.pid)
            return self._collect(proc, stdin, limits, group, cancel)
        finally:
            for fd in own_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if proc.returncode is None:
                self._kill(proc)
            if child is not None:
                _await_namespace_end(child)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()

    def _release(self, proc: subprocess.Popen[bytes], info_r: int, block_w: int, group: RunGroup | None) -> int:
        """Put bwrap's sandbox child in the cgroup, then let the command start (the child execs it after
        reading ``--block-fd``)."""
        raw = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        with selectors.DefaultSelector() as sel:
            sel.register(info_r, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not sel.select(deadline - time.monotonic()):
                    break
                chunk = os.read(info_r, 4096)
                if not chunk:
                    break
                raw += chunk
                if raw.rstrip().endswith(b"}"):
                    break
        try:
            child = int(json.loads(raw)["child-pid"])
            if group is not None:  # only the child: every sandboxed process descends from it, and a move
                group.add(child)     # into a v1 cgroup waits for an RCU grace period
        except (ValueError, KeyError, TypeError, OSError) as exc:
            self._kill(proc)
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise SandboxFailure(f"bubblewrap did not start: {err or exc}") from None
        try:
            os.write(block_w, b"1")
        except OSError as exc:  # bwrap died between reporting its child and starting the command
            raise SandboxFailure(f"bubblewrap exited before the command started: {exc}") from None
        return child

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.wait()

    def _collect(self, proc: subprocess.Popen[bytes], stdin: bytes | None, limits: Limits,
                 group: RunGroup | None, cancel: threading.Event | None) -> RunResult:
        started = time.monotonic()
        deadline = started + limits.timeout_s
        cap = limits.output_kb * 1024
        out = {"stdout": bytearray(), "stderr": bytearray()}
        truncated = timed_out = cancelled = False
        pending = memoryview(stdin) if stdin else None
        assert proc.stdout is not None and proc.stderr is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
            sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
            if pending is not None and proc.stdin is not None:
                os.set_blocking(proc.stdin.fileno(), False)
                sel.register(proc.stdin, selectors.EVENT_WRITE, "stdin")
            while len(sel.get_map()) > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
                for key, _ in sel.select(remaining if cancel is None else min(remaining, 0.05)):
                    if key.data == "stdin":
                        assert pending is not None and proc.stdin is not None
                        try:
                            written = os.write(proc.stdin.fileno(), pending[:65536])
                        except (BrokenPipeError, BlockingIOError) as exc:
                            written = 0 if isinstance(exc, BlockingIOError) else len(pending)
                        pending = pending[written:]
                        if not pending:
                            sel.unregister(proc.stdin)
                            proc.stdin.close()
                        continue
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    buf = out[key.data]
                    buf += chunk[: max(0, cap - len(buf))]
                    if len(chunk) > 0 and len(buf) >= cap:
                        truncated = True
                if truncated:
                    break
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
        if timed_out or truncated or cancelled:
            self._kill(proc)
        _, status, usage = os.wait4(proc.pid, 0) if proc.returncode is None else (0, 0, None)
        if proc.returncode is None:
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall_ms = (time.monotonic() - started) * 1000
        proc.stdout.close()
        proc.stderr.close()
        code = proc.returncode
        sig = -code if code < 0 else (code - 128 if self.isolated and code > 128 else None)
        if sig is not None and not (0 < sig < 65):
            sig = None
        peak = group.peak_bytes() if group is not None else None
        return RunResult(
            exit_code=None if timed_out or truncated or cancelled or sig is not None else code,
            signal=sig, stdout=bytes(out["stdout"]), stderr=bytes(out["stderr"]), wall_ms=wall_ms,
            cpu_ms=(usage.ru_utime + usage.ru_stime) * 1000 if usage else 0.0,
            peak_memory_kb=peak // 1024 if peak is not None else (usage.ru_maxrss if usage else None),
            timed_out=timed_out, output_truncated=truncated, cancelled=cancelled,
            oom=group.oom_killed() if group is not None else False,
            # SIGXCPU comes from RLIMIT_CPU's soft limit; SIGKILL at its hard limit if the program ignored that
            cpu_exceeded=sig == signal.SIGXCPU or (sig == signal.SIGKILL and usage is not None
                                                   and usage.ru_utime + usage.ru_stime >= math.ceil(limits.cpu_s)),
            file_too_large=sig == signal.SIGXFSZ,
        )
