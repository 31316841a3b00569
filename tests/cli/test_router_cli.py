"""``atlas router``'s commands against real Redis: the posteriors table, a user's patterns, an admin's share, forget
and reset (the connection as ``router-admin`` is tests/security/test_redis_acl.py's)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

from atlas_cli import router as cli
from atlas_core.settings import SettingsError
from atlas_router import PatternCache, Posteriors
from tests.conftest import RedisServer
from tests.router.helpers import settings, with_redis


def call(redis: Redis, command: str, **args: Any) -> Any:
    return cli.COMMANDS[command](argparse.Namespace(router_command=command, **args), settings(), redis)  # type: ignore


def test_status_patterns_share_forget_and_reset(redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
                                                ) -> None:
    async def work(redis: Redis) -> None:
        await Posteriors(redis).update("LOW", "fast", True, 400.0)
        pid = await PatternCache(redis).write("ann", np.ones(4, dtype=np.float32), language="python",
                                              problem="Add two numbers.", code="def add(a, b): return a + b",
                                              description="Add two numbers.", kind="idiom")
        capsys.readouterr()
        await call(redis, "status", json=True)
        table = json.loads(capsys.readouterr().out)
        assert table["LOW"]["fast"] == {"mean": 0.667, "alpha": 2.0, "beta": 1.0, "outcomes": 1, "cost": 533.3}
        await call(redis, "share", user="ann", id=pid, off=False)
        await call(redis, "patterns", user="ann", json=True)
        [row] = json.loads(capsys.readouterr().out.split("\n", 1)[1])
        assert row["id"] == pid and row["shared"] and row["tier"] == "short"
        with pytest.raises(SettingsError, match="has no pattern"):
            await call(redis, "share", user="bob", id=pid, off=False)
        await call(redis, "forget", user="ann")
        await call(redis, "reset")
        out = capsys.readouterr().out
        assert "deleted 1 pattern(s) of ann" in out and "1 posterior(s) reset" in out
        assert await redis.hlen("atlas:pat:shared") == 0

    with_redis(redis_server, work)


def test_the_table_lists_every_bin(redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    with_redis(redis_server, lambda redis: call(redis, "status", json=False))
    out = capsys.readouterr().out
    assert all(b in out for b in ("LOW", "MEDIUM", "HIGH", "EXTREME")) and "escalation: value" in out
