"""The one shared HTTP client factory: one ``httpx.AsyncClient`` per process, explicit timeouts and limits."""

from __future__ import annotations

from typing import Any

import httpx


def http_client(
    *,
    timeout_s: float = 30.0,
    connect_timeout_s: float = 5.0,
    max_connections: int = 200,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """Build the process's client. Close it with ``await client.aclose()`` (the lifespan's exit stack does)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 2),
        headers=headers,
        # Internal calls never follow redirects: a redirect from a backend is a misconfiguration to surface.
        follow_redirects=False,
        trust_env=False,
    )


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response body as a JSON object, or None when it is not one (a backend answering garbage)."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
