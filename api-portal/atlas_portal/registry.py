"""The model registry: what llama-server A really serves plus the ``atlas`` virtual models, after the admin's
renames and hidings. llama-server A's list is refreshed in the background (llama-cpp-python answers
``/v1/models`` only between completions), so asking for models never waits on a busy model server."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Literal

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from atlas_core.schemas import MODEL_EVENTS_CHANNEL, VIRTUAL_MODELS, ModelEntry
from atlas_portal import crud
from atlas_portal.settings import Settings

log = logging.getLogger("atlas.portal.models")
Route = Literal["llama", "embed", "rag"]
# The routes whose models answer chat completions. An allow-list: a route added later is not offered to chat
# clients (the UI's OpenCode block) until it is known to chat.
CHAT_ROUTES: frozenset[Route] = frozenset({"llama", "rag"})
REFRESH_S = 15.0


class ModelRegistry:
    def __init__(self, settings: Settings, http: httpx.AsyncClient, redis: Redis) -> None:
        self._settings = settings
        self._http = http
        self._redis = redis
        self._servers: dict[Route, str] = {"llama": settings.llama_url, "embed": settings.embed_url}
        self.upstream: dict[Route, list[str]] = {"llama": [], "embed": []}

    async def refresh(self) -> None:
        before = {route: list(names) for route, names in self.upstream.items()}
        key = self._settings.llama_api_key.get_secret_value()
        for route, url in self._servers.items():
            try:
                response = await self._http.get(f"{url}/v1/models", timeout=5.0,
                                                headers={"Authorization": f"Bearer {key}"})
                response.raise_for_status()
                self.upstream[route] = [m["id"] for m in response.json()["data"]]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.warning("could not list the models of %s (keeping %d known): %s", url,
                            len(self.upstream[route]), exc)
        if self.upstream != before:  # tell the proxies now rather than at their next refresh
            with suppress(RedisError):
                await self._redis.publish(MODEL_EVENTS_CHANNEL, "served")

    async def run(self) -> None:
        while True:
            await self.refresh()
            # A server still loading its model lists nothing yet: look again soon.
            await asyncio.sleep(REFRESH_S if all(self.upstream.values()) else 1.0)

    async def entries(self, sessions: async_sessionmaker[AsyncSession], *, include_hidden: bool = False
                      ) -> list[tuple[ModelEntry, bool]]:
        """``(entry, hidden)`` for every known model."""
        async with sessions() as session:
            settings = await crud.model_settings(session)
        result = []
        served: list[tuple[str, Route]] = [(name, route) for route, names in self.upstream.items() for name in names]
        for name, route in [*served, *((v, "rag") for v in VIRTUAL_MODELS)]:
            setting = settings.get(name)
            hidden = bool(setting and setting.hidden)
            if hidden and not include_hidden:
                continue
            public = (setting.display_name if setting else None) or name
            owner = "atlas" if route == "rag" else "llama-server"
            result.append((ModelEntry(id=public, upstream=name, route=route, owned_by=owner), hidden))
        return result
