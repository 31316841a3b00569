"""Dependencies as ``Annotated`` aliases, so routes read ``redis: RedisDep`` like plain typed parameters."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request
from redis.asyncio import Redis


def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


def _http(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.http
    return client


RedisDep = Annotated[Redis, Depends(_redis)]
HttpClient = Annotated[httpx.AsyncClient, Depends(_http)]
