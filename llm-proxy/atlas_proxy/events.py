"""Listens to the portal's events on Redis pub/sub: key revocations and model-registry changes."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from atlas_core.schemas import KEY_EVENTS_CHANNEL, MODEL_EVENTS_CHANNEL
from atlas_proxy.keys import KeyCache
from atlas_proxy.models import ModelCache

log = logging.getLogger("atlas.proxy.events")


async def listen(redis: Redis, keys: KeyCache, models: ModelCache) -> None:
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(KEY_EVENTS_CHANNEL, MODEL_EVENTS_CHANNEL)
                # Whatever was published while we were not subscribed is lost: start from nothing.
                keys.clear()
                models.invalidate()
                while True:
                    # Short polls rather than listen(): a quiet channel must not look like a dead socket.
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None:
                        continue
                    if message["channel"] in (KEY_EVENTS_CHANNEL, KEY_EVENTS_CHANNEL.encode()):
                        keys.on_event(message["data"])
                    else:
                        models.invalidate()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis gone, or a malformed message: drop the cache and listen again
            log.warning("event subscription lost (%s); cached keys dropped, resubscribing", exc)
            keys.clear()
            await asyncio.sleep(1.0)
