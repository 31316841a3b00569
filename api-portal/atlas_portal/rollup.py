"""Rolls the proxy's usage stream up per day, user, key and model, off the request path.

A consumer group (``portal``) reads ``atlas:usage``; entries are acknowledged only after their roll-up has
committed, so a crash re-delivers them (a portal restart re-reads its pending entries first). The consumer's last
applied entry id is committed with the totals (``usage_cursor``), so re-delivered entries that were applied already
are skipped: each entry is counted exactly once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
from collections import defaultdict
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from atlas_core.schemas import USAGE_STREAM
from atlas_portal import crud
from atlas_portal.db import UsageCursor

log = logging.getLogger("atlas.portal.usage")
GROUP = "portal"
DEAD_STREAM = "atlas:usage:dead"
BATCH = 500

Key = tuple[dt.date, int, int, str]


def aggregate(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> dict[Key, list[int]]:
    """Sum entries into ``(day, user, key, model) -> [requests, errors, prompt, completion, latency_ms]``."""
    totals: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for _, fields in entries:
        try:
            day = dt.datetime.fromtimestamp(float(fields[b"ts"]), dt.UTC).date()
            key = (day, int(fields[b"user_id"]), int(fields[b"key_id"]), fields[b"model"].decode()[:200])
            status = int(fields[b"status"])
            row = totals[key]
            requests = int(fields.get(b"requests", 1))  # a task attempt's tokens come without a request: 0
            row[0] += requests
            row[1] += requests and status >= 400
            row[2] += int(fields.get(b"prompt_tokens", 0))
            row[3] += int(fields.get(b"completion_tokens", 0))
            row[4] += int(float(fields.get(b"latency_ms", 0)))
        except (KeyError, ValueError) as exc:
            log.warning("skipping a malformed usage entry: %s", exc)
    return totals


def _order(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")
    return int(ms), int(seq or 0)


async def store(sessions: async_sessionmaker[AsyncSession], entries: list[tuple[bytes, dict[bytes, bytes]]],
                consumer: str) -> None:
    """Add the entries this consumer has not applied yet, and move its cursor past them, in one transaction."""
    async with sessions() as session, session.begin():
        cursor = await session.get(UsageCursor, consumer)
        done = _order(cursor.last_id) if cursor else (-1, -1)
        fresh = [e for e in entries if _order(e[0]) > done]
        if not fresh:
            return
        last = max((e[0] for e in fresh), key=_order)
        last_id = last.decode() if isinstance(last, bytes) else last
        if cursor is None:
            session.add(UsageCursor(consumer=consumer, last_id=last_id))
        else:
            cursor.last_id = last_id
        for (day, user_id, key_id, model), (requests, errors, prompt, completion, latency) in aggregate(fresh).items():
            await crud.add_usage(session, day=day, user_id=user_id, key_id=key_id, model=model, requests=requests,
                                 errors=errors, prompt_tokens=prompt, completion_tokens=completion,
                                 latency_ms=latency)


async def run(redis: Redis, sessions: async_sessionmaker[AsyncSession], block_ms: int = 1000) -> None:
    consumer = socket.gethostname()
    pending_first = True  # re-read what this consumer received but never acknowledged
    while True:
        try:
            try:
                await redis.xgroup_create(USAGE_STREAM, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            while True:
                start = "0" if pending_first else ">"
                reply: Any = await redis.xreadgroup(GROUP, consumer, {USAGE_STREAM: start}, count=BATCH,
                                               block=None if pending_first else block_ms)
                entries = reply[0][1] if reply else []
                if not entries:
                    pending_first = False
                    continue
                ids = [entry_id for entry_id, _ in entries]
                try:
                    await store(sessions, entries, consumer)
                except (DataError, IntegrityError) as exc:
                    # This batch can never be stored: set it aside instead of retrying it forever.
                    log.error("usage batch refused by the database, moved to %s: %s", DEAD_STREAM, exc)
                    for _, fields in entries:
                        await redis.xadd(DEAD_STREAM, fields, maxlen=100_000, approximate=True)
                await redis.xack(USAGE_STREAM, GROUP, *ids)
        except asyncio.CancelledError:
            raise
        except (RedisError, SQLAlchemyError, OSError) as exc:
            log.warning("usage roll-up paused: %s", exc)
            pending_first = True
            await asyncio.sleep(2.0)
