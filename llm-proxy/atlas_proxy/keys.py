"""Key validation with an in-process cache, emptied by the portal's revocation events.

Keys are cached under their SHA-256 (never the key itself) for ``proxy_key_cache_s``. The portal publishes
``{"key_id": N}`` / ``{"user_id": N}`` on ``atlas:keys:events`` when a key or user stops being valid; the
listener drops the matching entries at once, so a revoked key fails on its next request. After any gap in
the subscription the whole cache is dropped, since events may have been missed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Callable

import httpx
from pydantic import SecretStr, ValidationError

from atlas_core.schemas import KeyInfo

NEGATIVE_TTL_S = 1.0  # a refused key is re-checked after this, so re-enabling one takes effect quickly
MAX_REJECTED = 10_000  # remembered refusals; random keys must not grow memory without bound
KEY_FORMAT = re.compile(r"^sk-llm-[A-Za-z0-9_\-]{43}$")


class PortalUnavailable(Exception):
    """The portal could not say whether a key is valid."""


class KeyRejected(Exception):
    """The portal refused the key; the message says why (invalid, revoked, expired)."""


class KeyCache:
    def __init__(self, portal_url: str, proxy_token: SecretStr, http: httpx.AsyncClient, ttl_s: float) -> None:
        self._url = f"{portal_url}/internal/keys/validate"
        self._headers = {"Authorization": f"Bearer {proxy_token.get_secret_value()}"}
        self._http = http
        self._ttl_s = ttl_s
        self._valid: dict[str, tuple[KeyInfo, float]] = {}
        self._rejected: dict[str, tuple[str, float]] = {}
        self._inflight: dict[str, asyncio.Future[KeyInfo]] = {}
        # Bumped by every revocation event: an answer that was in flight across one is not cached.
        self._generation = 0

    async def lookup(self, key: str) -> KeyInfo:
        if not KEY_FORMAT.match(key):
            raise KeyRejected("invalid API key")  # not even shaped like one: no need to ask the portal
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        hit = self._valid.get(digest)
        if hit is not None and now < hit[1]:
            if hit[0].expires_at is None or hit[0].expires_at > time.time():
                return hit[0]
            self._valid.pop(digest, None)
        refused = self._rejected.get(digest)
        if refused is not None and now < refused[1]:
            raise KeyRejected(refused[0])
        # One validation per key at a time: a burst of requests with a new key asks the portal once.
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyInfo] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            info = await self._ask(key, digest)
            future.set_result(info)
            return info
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._inflight[digest]

    async def _post(self, key: str) -> httpx.Response:
        try:
            return await self._http.post(self._url, json={"key": key}, headers=self._headers, timeout=5.0)
        except httpx.HTTPError as exc:
            raise PortalUnavailable(f"api-portal unreachable: {type(exc).__name__}") from None

    async def _ask(self, key: str, digest: str) -> KeyInfo:
        generation = self._generation
        response = await self._post(key)
        if response.status_code in (400, 401):
            reason = _message(response) if response.status_code == 401 else None
            if len(self._rejected) >= MAX_REJECTED:
                self._rejected.clear()
            self._rejected[digest] = (reason or "invalid API key", time.monotonic() + NEGATIVE_TTL_S)
            raise KeyRejected(reason or "invalid API key")
        if response.status_code != 200:
            raise PortalUnavailable(f"api-portal answered {response.status_code}")
        try:
            info = KeyInfo.model_validate_json(response.content)
        except ValidationError:
            raise PortalUnavailable("api-portal sent an unreadable key record") from None
        if self._generation == generation:
            self._valid[digest] = (info, time.monotonic() + self._ttl_s)
        elif (await self._post(key)).status_code != 200:
            # A revocation raced this lookup: the answer was asked again rather than trusted (or cached).
            raise KeyRejected("this API key has been revoked")
        return info

    def on_event(self, payload: bytes | str) -> None:
        self._generation += 1
        try:
            event = json.loads(payload)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self.clear()
            return
        if "key_id" in event:
            self._drop(lambda info: info.key_id == event["key_id"])
        elif "user_id" in event:
            self._drop(lambda info: info.user_id == event["user_id"])
        else:
            self.clear()

    def _drop(self, match: Callable[[KeyInfo], bool]) -> None:
        for digest, (info, _) in list(self._valid.items()):
            if match(info):
                del self._valid[digest]

    def clear(self) -> None:
        self._generation += 1
        self._valid.clear()
        self._rejected.clear()


def _message(response: httpx.Response) -> str | None:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(message)
