"""rag-api settings."""

from __future__ import annotations

from pydantic import Field

from atlas_core.settings import HttpUrl, LlamaClientSettings, Port, SandboxClientSettings


class Settings(LlamaClientSettings, SandboxClientSettings):
    port: Port = Field(8001, validation_alias="ATLAS_RAG_PORT", description="rag-api HTTP port.")
    embed_url: HttpUrl = Field("http://127.0.0.1:8081", description="Base URL of llama-server B (embeddings).")
