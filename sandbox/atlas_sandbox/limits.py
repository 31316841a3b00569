"""Per-run resource limits: the service's own ceiling, lowered (never raised) by a caller's token and request."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class LimitsRequest(BaseModel):
    """Limits a caller asks for (in a request or a capability token); each can only lower the service's."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float | None = Field(None, gt=0, le=600)
    cpu_s: float | None = Field(None, gt=0, le=600)
    memory_mb: int | None = Field(None, ge=16, le=65536)
    processes: int | None = Field(None, ge=1, le=4096)
    file_mb: int | None = Field(None, ge=0, le=4096)
    open_files: int | None = Field(None, ge=16, le=65536)
    output_kb: int | None = Field(None, ge=1, le=65536)
