"""llm-proxy settings."""

from __future__ import annotations

from pydantic import Field

from atlas_core.settings import HttpUrl, LlamaClientSettings, Port


class Settings(LlamaClientSettings):
    port: Port = Field(8000, validation_alias="ATLAS_PROXY_PORT", description="llm-proxy HTTP port (the public entry).")
    portal_url: HttpUrl = Field("http://127.0.0.1:3000", description="Base URL of api-portal.")
    rag_url: HttpUrl = Field("http://127.0.0.1:8001", description="Base URL of rag-api.")
    embed_url: HttpUrl = Field("http://127.0.0.1:8081", description="Base URL of llama-server B (embeddings).")
    proxy_fail_open: bool = Field(
        False, description="Serve without rate limits when Redis is down (default: refuse with 503)."
    )
    proxy_max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body the proxy accepts, in bytes (413 beyond)."
    )
    proxy_upstream_timeout_s: float = Field(
        600.0, gt=0, description="How long the proxy waits for a model backend between bytes (504 beyond)."
    )
    proxy_key_cache_s: float = Field(
        60.0, gt=0, description="How long a validated key is trusted without asking the portal again "
        "(revocations reach the proxy at once regardless)."
    )
    proxy_default_max_tokens: int = Field(
        1024, ge=1, description="Completion tokens reserved against a key's tokens/min when a request sets no "
        "max_tokens (reconciled with the real count afterwards)."
    )
