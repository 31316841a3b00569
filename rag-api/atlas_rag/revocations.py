"""Cancels a user's waiting and running tasks the moment their key is revoked or their account deactivated (the
portal's event on ``atlas:keys:events``). Pub/sub can miss an event while rag-api is away: the task-workers check
the portal's ``atlas:revoked`` set before they start a task and while it runs, so a missed event delays nothing
that would have run."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from atlas_core.queue import TaskQueue
from atlas_core.schemas import KEY_EVENTS_CHANNEL

log = logging.getLogger("atlas.rag.revocations")


async def cancel_revoked(queue: TaskQueue, event: dict[str, Any]) -> int:
    """Cancel the tasks an event revokes; how many were asked to stop."""
    if event.get("revoked") is not True or not isinstance(event.get("user_id"), int):
        return 0
    owner, key = str(event["user_id"]), event.get("key_id")
    message = "its API key was revoked" if key is not None else "its owner's account was deactivated"
    stopped = 0
    for task_id in await queue.active(owner):
        record = await queue.record(task_id)
        if record is None or (key is not None and record.get("key_id") != str(key)):
            continue
        if await queue.cancel(task_id, owner, message) in ("cancelled", "cancelling"):
            stopped += 1
    if stopped:
        log.info("cancelled %d task(s) of user %s: %s", stopped, owner, message)
    return stopped


async def listen(redis: Redis, queue: TaskQueue) -> None:
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(KEY_EVENTS_CHANNEL)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None:
                        continue
                    try:
                        event = json.loads(message["data"])
                    except ValueError:
                        continue
                    if isinstance(event, dict):
                        await cancel_revoked(queue, event)
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            log.warning("key events lost (%s); resubscribing", exc)
            await asyncio.sleep(1.0)
