"""Per-run resource limits: the service's own ceiling, lowered (never raised) by a caller's token and request."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from atlas_core.sandbox_api import LimitsRequest


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock per run
    cpu_s: float = 10.0  # CPU time per run (RLIMIT_CPU, whole seconds rounded up)
    memory_mb: int = 512  # cgroup memory limit, and the address-space limit where the language allows one
    processes: int = 64  # cgroup pids limit and RLIMIT_NPROC
    file_mb: int = 16  # largest file a run may write (RLIMIT_FSIZE)
    open_files: int = 256  # RLIMIT_NOFILE
    output_kb: int = 1024  # stdout and stderr kept per run; more is cut and the run stopped (OutputLimit)

    def address_space_bytes(self) -> int:
        """RLIMIT_AS for languages that allow one: over resident memory, since allocators reserve more than they
        touch. The cgroup limit is the exact one; this catches a memory bomb where no cgroup is available."""
        return (self.memory_mb * 2 + 256) << 20

    def lower(self, other: LimitsRequest | None) -> Limits:
        """The minimum of these limits and the ones ``other`` sets (unset fields keep ours)."""
        if other is None:
            return self
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(other, f.name, None)
            if value is not None:
                changes[f.name] = min(getattr(self, f.name), value)
        return replace(self, **changes)
