"""The model registry as the proxy sees it: fetched from the portal, refreshed on the portal's change events
and at least every ``REFRESH_S``; the last good list serves while the portal is briefly away."""

from __future__ import annotations

import asyncio
import time

import httpx
from pydantic import SecretStr, TypeAdapter, ValidationError

from atlas_core.schemas import ModelEntry

REFRESH_S = 10.0
_ENTRIES = TypeAdapter(list[ModelEntry])


class ModelsUnavailable(Exception):
    pass


class ModelCache:
    def __init__(self, portal_url: str, proxy_token: SecretStr, http: httpx.AsyncClient) -> None:
        self._url = f"{portal_url}/internal/models"
        self._headers = {"Authorization": f"Bearer {proxy_token.get_secret_value()}"}
        self._http = http
        self._entries: dict[str, ModelEntry] | None = None
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._fetched = 0.0

    async def entries(self) -> dict[str, ModelEntry]:
        if self._entries is not None and time.monotonic() - self._fetched < REFRESH_S:
            return self._entries
        async with self._lock:  # one refresh at a time; the others wait for its result
            if self._entries is None or time.monotonic() - self._fetched >= REFRESH_S:
                await self._refresh()
        assert self._entries is not None
        return self._entries

    async def _refresh(self) -> None:
        try:
            response = await self._http.get(self._url, headers=self._headers, timeout=5.0)
            response.raise_for_status()
            entries: dict[str, ModelEntry] = {}
            for entry in _ENTRIES.validate_json(response.content):
                entries.setdefault(entry.id, entry)  # the portal lists llama-server A before B: A wins
            self._entries = entries
            self._fetched = time.monotonic()
        except (httpx.HTTPError, ValidationError) as exc:
            if self._entries is None:
                raise ModelsUnavailable(f"api-portal unreachable for the model list: {type(exc).__name__}") from None
            self._fetched = time.monotonic() - REFRESH_S + 1.0  # keep the stale list, retry in a second

    async def resolve(self, name: str) -> ModelEntry | None:
        """The entry for a public model name (hidden and renamed-away names have none). An unknown name
        triggers one early refresh (at most one a second), so a model that just appeared is found."""
        entry = (await self.entries()).get(name)
        if entry is None and time.monotonic() - self._fetched > 1.0:
            self.invalidate()
            entry = (await self.entries()).get(name)
        return entry
