"""The one way services open Redis: explicit timeouts, so a dead Redis fails fast instead of hanging."""

from __future__ import annotations

from redis.asyncio import Redis

from atlas_core.settings import ServiceSettings


def redis_client(settings: ServiceSettings) -> Redis:
    """An asyncio Redis client for ``settings.redis_url``; close it with ``await client.aclose()``."""
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    return Redis.from_url(
        settings.redis_url,
        password=password,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=30,
        retry_on_timeout=True,
    )
