"""Per-user and per-key limits in Redis, decided atomically in one round trip (a Lua script). A key's limits sit
under its owner's, which all of that user's keys share, so a second key is never a second allowance:

- requests per minute as a sliding-window log (a sorted set of admission times): never more than the limit in
  any 60 s, so there is no double burst at window edges as with fixed windows or a full token bucket;
- tokens per minute, reserving the request's worst case on admission and replacing it with the real count when
  the response ends (a running total keeps this O(1) per request);
- concurrent requests, each entry expiring on its own so a crashed proxy cannot leak slots;
- open event streams (``Streams``), the same way, refreshed while they stay open.

The task-workers use the same windows (``mode="tokens"``): each task attempt reserves its token ceiling against
its key and user before it runs, and settles what it spent, so tasks count toward tokens per minute like requests.

Memory per user is proportional to their requests in the last minute (one sorted-set entry each in the user's log
and the key's, about 100 bytes). Times come from Redis (``TIME``), so several proxies share one clock. Every key
of one user carries the user's hash tag, so a Redis Cluster keeps them on one shard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from atlas_core.lua import source
from atlas_core.schemas import KeyInfo

WINDOW_MS = 60_000
STREAM_TTL_MS = 60_000  # an open stream's slot lives this long unless refreshed (a crashed proxy's slots expire)
STREAM_REFRESH_S = 20.0

# The scripts, in atlas_core/lua/ratelimit_*.lua (each file says its KEYS, ARGV and answer).
ADMIT = source("ratelimit_admit")
FINISH = source("ratelimit_finish")
STREAM = source("ratelimit_stream")

REASONS = {1: "requests per minute", 2: "tokens per minute", 3: "concurrent requests",
           4: "tokens per minute (this one request asks for more than the whole limit; lower max_tokens or the budget)"}
OVER_WHOLE_LIMIT = REASONS[4]  # never admitted, however long it waits
SCOPES = {1: "user", 2: "key"}


@dataclass
class Decision:
    admitted: bool
    reason: str = ""
    scope: str = ""  # "user" or "key": whose limit refused it
    retry_after_ms: int = 0
    requests_used: int = 0
    tokens_used: int = 0

    @property
    def message(self) -> str:
        whose = "this user (shared by all their keys)" if self.scope == "user" else "this key"
        return f"rate limit reached for {whose}: {self.reason}"

    def headers(self, info: KeyInfo) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers of the key (and ``Retry-After`` when refused)."""
        headers: dict[str, str] = {}
        if info.rate_limit:
            headers["x-ratelimit-limit-requests"] = str(info.rate_limit)
            headers["x-ratelimit-remaining-requests"] = str(max(0, info.rate_limit - self.requests_used))
        if info.tokens_per_min:
            headers["x-ratelimit-limit-tokens"] = str(info.tokens_per_min)
            headers["x-ratelimit-remaining-tokens"] = str(max(0, info.tokens_per_min - self.tokens_used))
        if not self.admitted and self.retry_after_ms:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after_ms / 1000)))
            headers["x-ratelimit-reset-requests"] = f"{self.retry_after_ms / 1000:.3f}s"
        return headers


def _tag(user_id: int | str) -> str:
    return f"atlas:rl:{{u{user_id}}}"


def limit_keys(user_id: int | str, key_id: int | str) -> list[str]:
    """The user's four windows, then the key's (all under the user's hash tag)."""
    user, key = _tag(user_id), f"{_tag(user_id)}:k{key_id}"
    return [f"{user}:req", f"{user}:tok", f"{user}:toksum", f"{user}:conc",
            f"{key}:req", f"{key}:tok", f"{key}:toksum", f"{key}:conc"]


def stream_keys(user_id: int | str, key_id: int | str) -> list[str]:
    return [f"{_tag(user_id)}:streams", f"{_tag(user_id)}:k{key_id}:streams"]


@dataclass(frozen=True)
class Owner:
    """Whose windows a reservation goes into, and their limits (0 = unlimited)."""

    user_id: int | str
    key_id: int | str
    user_rpm: int = 0
    user_tpm: int = 0
    user_concurrency: int = 0
    key_rpm: int = 0
    key_tpm: int = 0
    key_concurrency: int = 0

    @classmethod
    def of(cls, info: KeyInfo) -> Owner:
        return cls(info.user_id, info.key_id, info.user_rate_limit, info.user_tokens_per_min,
                   info.user_max_concurrent, info.rate_limit, info.tokens_per_min, info.max_concurrent)


class Limiter:
    def __init__(self, redis: Redis, max_request_s: float) -> None:
        self._admit = redis.register_script(ADMIT)
        self._finish = redis.register_script(FINISH)
        self._stream = redis.register_script(STREAM)
        self._slot_ttl_ms = int((max_request_s + 60) * 1000)

    async def admit(self, owner: Owner, request_id: str, reserve_tokens: int,
                    mode: Literal["request", "tokens"] = "request") -> Decision:
        """One round trip; raises redis errors (the caller decides between 503 and failing open). ``tokens``
        mode reserves tokens only (no request is counted and no concurrency slot taken)."""
        code, retry, scope, used, tokens = await self._admit(
            keys=limit_keys(owner.user_id, owner.key_id),
            args=[request_id, reserve_tokens, WINDOW_MS, self._slot_ttl_ms, mode,
                  owner.user_rpm, owner.user_tpm, owner.user_concurrency,
                  owner.key_rpm, owner.key_tpm, owner.key_concurrency],
        )
        return Decision(admitted=code == 0, reason=REASONS.get(int(code), ""), scope=SCOPES.get(int(scope), ""),
                        retry_after_ms=int(retry), requests_used=int(used), tokens_used=int(tokens))

    def finish(self, pipe: Pipeline, owner: Owner, request_id: str, reserved: int, actual: int) -> None:
        """Queue on ``pipe``: free the concurrency slot and replace the reservation with the tokens really used.

        By hash (EVALSHA), not through redis-py's script helper, which asks SCRIPT EXISTS before every pipeline:
        a round trip per request. If Redis has lost the script (a restart), ``reload`` puts it back."""
        windows = limit_keys(owner.user_id, owner.key_id)
        keys = [windows[1], windows[2], windows[3], windows[5], windows[6], windows[7]]
        pipe.evalsha(self._finish.sha, len(keys), *keys, request_id, reserved, actual)

    async def settle(self, owner: Owner, request_id: str, reserved: int, actual: int) -> None:
        """``finish`` in its own round trip (the task-workers, which have nothing else to send with it)."""
        for attempt in (1, 2):
            try:
                async with self._finish.registered_client.pipeline(transaction=False) as pipe:
                    self.finish(pipe, owner, request_id, reserved, actual)  # type: ignore[arg-type]
                    await pipe.execute()
                return
            except NoScriptError:  # Redis restarted without its scripts
                if attempt == 2:
                    raise
                await self.reload()

    async def open_stream(self, info: KeyInfo, stream_id: str) -> int:
        """0 when the stream may open, else 1 (the user's cap) or 2 (the key's)."""
        return int(await self._stream(keys=stream_keys(info.user_id, info.key_id),
                                      args=[stream_id, STREAM_TTL_MS, info.user_max_streams, info.max_streams,
                                            "open"]))

    async def refresh_stream(self, info: KeyInfo, stream_id: str) -> None:
        await self._stream(keys=stream_keys(info.user_id, info.key_id),
                           args=[stream_id, STREAM_TTL_MS, 0, 0, "refresh"])

    async def close_stream(self, info: KeyInfo, stream_id: str) -> None:
        user, key = stream_keys(info.user_id, info.key_id)
        async with self._stream.registered_client.pipeline(transaction=False) as pipe:
            pipe.zrem(user, stream_id)
            pipe.zrem(key, stream_id)
            await pipe.execute()

    async def reload(self) -> None:
        await self._finish.registered_client.script_load(FINISH)
