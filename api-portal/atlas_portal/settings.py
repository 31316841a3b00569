"""api-portal settings."""

from __future__ import annotations

from pydantic import Field

from atlas_core.settings import Port, ServiceSettings


class Settings(ServiceSettings):
    port: Port = Field(3000, validation_alias="ATLAS_PORTAL_PORT", description="api-portal HTTP port.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the portal database: sqlite:///PATH or postgresql://USER:PASS@HOST/DB. "
        "Default: SQLite file portal.db in the state directory.",
    )

    def async_database_url(self) -> str:
        """The URL with an asyncio driver (aiosqlite, psycopg), so no query blocks the event loop."""
        url = self.database_url or f"sqlite:///{self.state_dir / 'portal.db'}"
        for plain, driver in (("sqlite://", "sqlite+aiosqlite://"), ("postgresql://", "postgresql+psycopg://"),
                              ("postgres://", "postgresql+psycopg://")):
            if url.startswith(plain):
                return driver + url.removeprefix(plain)
        return url
