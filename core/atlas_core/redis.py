"""The one way services open Redis: their own ACL user, explicit timeouts (a dead Redis fails fast instead of
hanging) and a bounded pool (a burst waits at most ``redis_pool_wait_s`` for a connection, then gets 503)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

from atlas_core.settings import ServiceSettings


def redis_client(settings: ServiceSettings, *, pool: int | None = None, socket_timeout_s: float = 5.0) -> Redis:
    """An asyncio Redis client for ``settings.redis_url``; close it with ``await client.aclose()``.

    ``pool`` overrides the connection cap (a second client for long blocking reads, such as the task event
    streams, keeps them from taking every connection ordinary requests need)."""
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    connections = BlockingConnectionPool.from_url(
        settings.redis_url,
        username=settings.redis_user,
        password=password,
        max_connections=pool or settings.redis_pool,
        timeout=settings.redis_pool_wait_s,
        socket_connect_timeout=2.0,
        socket_timeout=socket_timeout_s,
        health_check_interval=30,
        retry_on_timeout=True,
    )
    return Redis.from_pool(connections)  # the client owns the pool: aclose() closes both
