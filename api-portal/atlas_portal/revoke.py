"""Telling the other services that a key or a user stopped being valid: the proxies drop cached validations (a
pub/sub event), rag-api cancels the queued tasks at once (the same event), and the task-workers, which may have
missed it, check ``atlas:revoked`` before they start or go on with a task."""

from __future__ import annotations

import json
import time

from redis.asyncio import Redis

from atlas_core.schemas import KEY_EVENTS_CHANNEL, REVOKED, REVOKED_KEEP_S


async def revoked(redis: Redis, *, user_id: int, key_id: int | None = None) -> None:
    """A key (``key_id``) or a whole user was revoked, deactivated or deleted."""
    now = time.time()
    member = f"k:{key_id}" if key_id is not None else f"u:{user_id}"
    event = {"user_id": user_id, "revoked": True} | ({"key_id": key_id} if key_id is not None else {})
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(REVOKED, {member: now})
        pipe.zremrangebyscore(REVOKED, "-inf", now - REVOKED_KEEP_S)
        pipe.publish(KEY_EVENTS_CHANNEL, json.dumps(event))
        await pipe.execute()


async def restored(redis: Redis, *, user_id: int, key_id: int | None = None) -> None:
    """A key or user became valid again: new tasks may run (ones queued before stay cancelled)."""
    await redis.zrem(REVOKED, f"k:{key_id}" if key_id is not None else f"u:{user_id}")


async def changed(redis: Redis, *, user_id: int) -> None:
    """A user's limits changed: the proxies drop what they cached for the user's keys."""
    await redis.publish(KEY_EVENTS_CHANNEL, json.dumps({"user_id": user_id, "revoked": False}))
