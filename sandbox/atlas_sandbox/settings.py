"""sandbox settings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from atlas_core.capability import verify_key
from atlas_core.settings import Port, ServiceSettings, host_field
from atlas_sandbox.limits import Limits


def _verify_key(value: str) -> str:
    verify_key(value)
    return value


class Settings(ServiceSettings):
    port: Port = Field(8020, validation_alias="ATLAS_SANDBOX_PORT", description="sandbox HTTP port.")
    host: str = host_field("sandbox", "ATLAS_SANDBOX_HOST")
    sandbox_max_body_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, le=1024**3, description="Largest /execute or /judge body the sandbox accepts "
        "(candidates and tests of one call), in bytes (413 beyond).")
    sandbox_verify_key: Annotated[str, AfterValidator(_verify_key)] = Field(
        description="Ed25519 public key (base64url) that checks capability tokens. atlas up derives it from "
        "ATLAS_SANDBOX_SIGNING_KEY; elsewhere run `atlas sandbox-key` with that secret."
    )
    sandbox_isolation: Literal["bwrap", "none"] = Field(
        "bwrap", description="bwrap: every run in a fresh bubblewrap sandbox (required in production). none: "
        "runs are plain processes with rlimits, for development only; a warning is logged at every start."
    )
    sandbox_replay_cache: Literal["redis", "memory"] = Field(
        "redis", description="Where the single-use record of capability tokens lives: redis (shared by every "
        "replica) or memory (this process's own, bounded; the sandbox then needs no Redis and no network egress at "
        "all, as the Kubernetes manifests run it).")
    sandbox_workers: int = Field(0, ge=0, le=256, description="Runs at once; 0 means one per CPU.")
    sandbox_queue_limit: int = Field(
        32, ge=0, description="Requests that may wait for a worker beyond those being served; more get 503."
    )
    sandbox_timeout_s: float = Field(10.0, gt=0, le=600, description="Most wall-clock time one run may take.")
    sandbox_cpu_s: float = Field(10.0, gt=0, le=600, description="Most CPU time one run may use.")
    sandbox_memory_mb: int = Field(512, ge=32, description="Most memory one run may use (cgroup limit).")
    sandbox_processes: int = Field(64, ge=4, description="Most processes and threads one run may have at once.")
    sandbox_file_mb: int = Field(16, ge=1, description="Largest file one run may write.")
    sandbox_open_files: int = Field(256, ge=32, description="Most open files of one run.")
    sandbox_output_kb: int = Field(
        1024, ge=1, description="stdout and stderr kept per run; a run writing more is stopped (OutputLimit)."
    )
    sandbox_tmp_mb: int = Field(64, ge=1, description="Size of the private /tmp of each run (counts as memory).")
    sandbox_compile_timeout_s: float = Field(60.0, gt=0, description="Most wall-clock time one compile may take.")
    sandbox_compile_memory_mb: int = Field(2048, ge=64, description="Most memory one compile may use.")
    sandbox_deadline_s: float = Field(300.0, gt=0, description="Most wall-clock time one /judge call may take.")
    sandbox_cache_entries: int = Field(
        4096, ge=0, description="Verdicts kept in memory, keyed by code, tests, language and limits (0: off)."
    )
    sandbox_cgroups: bool = Field(
        True, description="Put each run in its own cgroup v1 memory and pids group where the host allows it "
        "(exact memory limit, peak memory, OOM verdicts). Off: rlimits and the pid namespace only, about 8 ms "
        "faster per run on these hosts (moving a process into a v1 cgroup waits for an RCU grace period)."
    )
    sandbox_run_uid: int = Field(
        65534, ge=1, description="Host uid runs drop to when the service itself runs as root (nobody)."
    )
    sandbox_work_dir: Path | None = Field(
        None, description="Where per-run work directories are made. Default: the system temporary directory."
    )

    def limits(self) -> Limits:
        return Limits(timeout_s=self.sandbox_timeout_s, cpu_s=self.sandbox_cpu_s, memory_mb=self.sandbox_memory_mb,
                      processes=self.sandbox_processes, file_mb=self.sandbox_file_mb,
                      open_files=self.sandbox_open_files, output_kb=self.sandbox_output_kb)

    def compile_limits(self) -> Limits:
        """A run's limits, with the compile time and memory, and room for what compilers need."""
        run = self.limits()
        return replace(run, timeout_s=self.sandbox_compile_timeout_s, cpu_s=self.sandbox_compile_timeout_s,
                       memory_mb=self.sandbox_compile_memory_mb, processes=max(run.processes, 64),
                       file_mb=max(run.file_mb, 256), open_files=max(run.open_files, 1024),
                       output_kb=max(run.output_kb, 256))
