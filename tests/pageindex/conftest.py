"""The pageindex tests' Redis: the session's server, emptied for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RedisServer


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[RedisServer]:
    with redis_server.client() as client:
        client.flushdb()
    yield redis_server
