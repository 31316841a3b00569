"""sandbox settings."""

from __future__ import annotations

from pydantic import Field

from atlas_core.settings import Port, ServiceSettings


class Settings(ServiceSettings):
    port: Port = Field(8020, validation_alias="ATLAS_SANDBOX_PORT", description="sandbox HTTP port.")
