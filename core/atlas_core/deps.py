"""Dependencies as ``Annotated`` aliases, so routes read ``redis: RedisDep`` like plain typed parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis


def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


RedisDep = Annotated[Redis, Depends(_redis)]
