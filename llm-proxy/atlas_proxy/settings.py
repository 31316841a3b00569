"""llm-proxy settings."""

from __future__ import annotations

from pydantic import Field

from atlas_core.settings import HttpUrl, LlamaClientSettings, Port


class Settings(LlamaClientSettings):
    port: Port = Field(8000, validation_alias="ATLAS_PROXY_PORT", description="llm-proxy HTTP port (the public entry).")
    portal_url: HttpUrl = Field("http://127.0.0.1:3000", description="Base URL of api-portal.")
    rag_url: HttpUrl = Field("http://127.0.0.1:8001", description="Base URL of rag-api.")
