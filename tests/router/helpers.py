"""Shared pieces of the router tests: Redis from the session's server, an embedder at the test boundary whose
vectors make texts with the same words similar (the real embedding server is tested in tests/llama), settings."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
from redis.asyncio import Redis

from atlas_router import RouterSettings
from tests.conftest import RedisServer
from tests.lens.helpers import TextEmbedder

T = TypeVar("T")
DIM = 64


def words(text: str) -> np.ndarray:
    """A bag of words hashed into DIM dimensions: the same words, the same direction."""
    v = np.zeros(DIM, dtype=np.float32)
    for word in re.findall(r"[a-z]+", text.lower()):
        v[int(hashlib.sha256(word.encode()).hexdigest()[:8], 16) % DIM] += 1.0
    return v / max(1e-9, float(np.linalg.norm(v)))


class WordEmbedder(TextEmbedder):
    """The embedding server at the test boundary: texts with the same words are similar."""

    def __init__(self) -> None:
        super().__init__(words)


def settings(**extra: Any) -> RouterSettings:
    return RouterSettings.model_validate(extra)


def with_redis(redis_server: RedisServer, work: Callable[[Redis], Awaitable[T]]) -> T:
    async def main() -> T:
        redis = Redis.from_url(redis_server.url, password=redis_server.password)
        try:
            keys = [k async for k in redis.scan_iter("atlas:router:*")] + \
                   [k async for k in redis.scan_iter("atlas:pat:*")]
            if keys:
                await redis.delete(*keys)
            return await work(redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())
