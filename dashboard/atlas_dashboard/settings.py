"""dashboard settings."""

from __future__ import annotations

from pydantic import Field

from atlas_core.settings import Port, ServiceSettings, host_field


class Settings(ServiceSettings):
    port: Port = Field(3001, validation_alias="ATLAS_DASHBOARD_PORT", description="dashboard HTTP port.")
    host: str = host_field("dashboard", "ATLAS_DASHBOARD_HOST")
