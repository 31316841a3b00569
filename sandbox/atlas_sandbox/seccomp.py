"""A seccomp filter for the syscalls sandboxed code never needs, compiled once to BPF for ``bwrap --seccomp``.

Everything else is allowed (a deny list, as Docker's profile does for the same calls): the namespaces already
hide the host, and the filter removes the kernel surface that escapes have used (ptrace, mount, keyctl, bpf,
user namespaces inside the sandbox, io_uring, kernel modules, ...).
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

log = logging.getLogger("atlas.sandbox")

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr", "name_to_handle_at", "open_by_handle_at",
    "unshare", "setns",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd", "fanotify_init", "lookup_dcookie",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "iopl", "ioperm", "personality",
)
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
CLONE_NEW_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)


def build(path: Path) -> Path | None:
    """Write the BPF program to ``path``; None (and a warning) where libseccomp is unavailable."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:  # OSError: the wrapper found no libseccomp.so
        log.warning("seccomp filter disabled: %s", exc)
        return None
    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in DENIED:
        try:
            flt.add_rule(sc.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # a syscall this architecture or libseccomp version does not know
    # New namespaces inside the sandbox would re-open what unshare/setns close. clone3 passes its flags in
    # memory a filter cannot read, so it fails with ENOSYS and libc falls back to clone (as Docker does).
    for flag in CLONE_NEW_FLAGS:
        flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with open(path, "wb") as out:
        flt.export_bpf(out)
    return path
