"""task-worker settings."""

from __future__ import annotations

from pydantic import Field

from atlas_core.settings import LlamaClientSettings, Port, SandboxClientSettings


class Settings(LlamaClientSettings, SandboxClientSettings):
    port: Port = Field(
        8030, validation_alias="ATLAS_WORKER_PORT", description="task-worker health and metrics port."
    )
