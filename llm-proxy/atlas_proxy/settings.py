"""llm-proxy settings."""

from __future__ import annotations

from pydantic import Field

from atlas_core.budget import BudgetDefaults
from atlas_core.settings import HttpUrl, LlamaClientSettings, Port, ProxyCredential, host_field


class Settings(LlamaClientSettings, ProxyCredential, BudgetDefaults):
    port: Port = Field(8000, validation_alias="ATLAS_PROXY_PORT", description="llm-proxy HTTP port (the public entry).")
    host: str = host_field("llm-proxy", "ATLAS_PROXY_HOST")
    portal_url: HttpUrl = Field("http://127.0.0.1:3000", description="Base URL of api-portal.")
    rag_url: HttpUrl = Field("http://127.0.0.1:8001", description="Base URL of rag-api.")
    embed_url: HttpUrl = Field("http://127.0.0.1:8081", description="Base URL of llama-server B (embeddings).")
    proxy_fail_open: bool = Field(
        False, description="Serve without rate limits when Redis is down (default: refuse with 503)."
    )
    proxy_max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, le=1024**3,
        description="Largest request body the proxy accepts, in bytes (413 beyond)."
    )
    proxy_upstream_timeout_s: float = Field(
        600.0, gt=0, description="How long the proxy waits for a model backend between bytes (504 beyond)."
    )
    proxy_key_cache_s: float = Field(
        60.0, gt=0, description="How long a validated key is trusted without asking the portal again "
        "(revocations reach the proxy at once regardless)."
    )
    proxy_default_max_tokens: int = Field(
        1024, ge=1, description="Completion tokens a raw-model request may generate when it sets no max_tokens: "
        "reserved against tokens per minute and sent to the model server as its limit."
    )
    proxy_backend_connections: int = Field(
        1000, ge=1, le=100_000, description="Connections to the model servers and rag-api at once (requests beyond "
        "wait up to 5 s for one, then get 503).")
    proxy_pool_wait_s: float = Field(
        5.0, gt=0, le=120, description="How long a request waits for a free backend connection before it is answered "
        "503 with Retry-After.")
    proxy_stream_connections: int = Field(
        256, ge=1, le=100_000, description="Task event streams relayed at once, in a pool of their own so they never "
        "take the connections requests need (beyond: 503 with Retry-After).")
    proxy_usage_buffer: int = Field(
        10_000, ge=0, le=1_000_000, description="Usage records kept in memory while Redis is briefly away, written "
        "as soon as it is back (beyond: the oldest are dropped and counted in atlas_proxy_usage_dropped_total).")
