"""Per-key limits in Redis, decided atomically in one round trip (a Lua script):

- requests per minute as a sliding-window log (a sorted set of admission times): never more than the limit in
  any 60 s, so there is no double burst at window edges as with fixed windows or a full token bucket;
- tokens per minute, reserving the request's worst case (prompt estimate + max_tokens) on admission and
  replacing it with the real count when the response ends (a running total keeps this O(1) per request);
- concurrent requests, each entry expiring on its own so a crashed proxy cannot leak slots.

Memory per key is proportional to its requests in the last minute (one sorted-set entry each, about 100
bytes). Times come from Redis (``TIME``), so several proxies share one clock. Keys carry a hash tag per API key, so
a Redis Cluster keeps a key's three sets on one shard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from atlas_core.schemas import KeyInfo

WINDOW_MS = 60_000

# KEYS: requests log, token reservations, their running total, concurrency slots.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, rpm, tpm, conc = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local reserve, window, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
-- Reservations leaving the window are subtracted from the running total: O(expired), not O(window).
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - window)
if #expired > 0 then
  local freed = 0
  for _, m in ipairs(expired) do freed = freed + tonumber(string.match(m, '|(%d+)$')) end
  redis.call('DECRBY', KEYS[3], freed)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local used = redis.call('ZCARD', KEYS[1])
if rpm > 0 and used >= rpm then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, tonumber(oldest[2]) + window - now, used, 0}
end
local tokens = tonumber(redis.call('GET', KEYS[3]) or '0')
if tpm > 0 then
  if reserve > tpm then return {4, 0, used, tokens} end
  if tokens + reserve > tpm then
    local need, freed, retry = tokens + reserve - tpm, 0, window
    local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      freed = freed + tonumber(string.match(entries[i], '|(%d+)$'))
      if freed >= need then retry = tonumber(entries[i + 1]) + window - now break end
    end
    return {2, retry, used, tokens}
  end
end
if conc > 0 and redis.call('ZCARD', KEYS[4]) >= conc then return {3, 1000, used, tokens} end
redis.call('ZADD', KEYS[1], now, id)
redis.call('ZADD', KEYS[2], now, id .. '|' .. string.format('%d', reserve))
redis.call('INCRBY', KEYS[3], reserve)
redis.call('ZADD', KEYS[4], now + ttl, id)
redis.call('PEXPIRE', KEYS[1], window)
redis.call('PEXPIRE', KEYS[2], window)
redis.call('PEXPIRE', KEYS[3], window)
redis.call('PEXPIRE', KEYS[4], ttl)
return {0, 0, used + 1, tokens + reserve}
"""

# KEYS: token reservations, their running total, concurrency slots. ARGV: id, reserved, actual.
FINISH = """
local old = ARGV[1] .. '|' .. ARGV[2]
local score = redis.call('ZSCORE', KEYS[1], old)
if score then
  redis.call('ZREM', KEYS[1], old)
  redis.call('ZADD', KEYS[1], score, ARGV[1] .. '|' .. ARGV[3])
  redis.call('INCRBY', KEYS[2], tonumber(ARGV[3]) - tonumber(ARGV[2]))
end
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""

REASONS = {
    1: "requests per minute",
    2: "tokens per minute",
    3: "concurrent requests",
    4: "tokens per minute (this one request asks for more than the whole limit; lower max_tokens)",
}


@dataclass
class Decision:
    admitted: bool
    reason: str = ""
    retry_after_ms: int = 0
    requests_used: int = 0
    tokens_used: int = 0

    def headers(self, info: KeyInfo) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers (and ``Retry-After`` when refused)."""
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


def _keys(key_id: int) -> list[str]:
    tag = f"atlas:rl:{{{key_id}}}"
    return [f"{tag}:req", f"{tag}:tok", f"{tag}:toksum", f"{tag}:conc"]


class Limiter:
    def __init__(self, redis: Redis, max_request_s: float) -> None:
        self._admit = redis.register_script(ADMIT)
        self._finish = redis.register_script(FINISH)
        self._slot_ttl_ms = int((max_request_s + 60) * 1000)

    async def admit(self, info: KeyInfo, request_id: str, reserve_tokens: int) -> Decision:
        """One round trip; raises redis errors (the caller decides between 503 and failing open)."""
        code, retry, used, tokens = await self._admit(
            keys=_keys(info.key_id),
            args=[request_id, info.rate_limit, info.tokens_per_min, info.max_concurrent, reserve_tokens,
                  WINDOW_MS, self._slot_ttl_ms],
        )
        return Decision(admitted=code == 0, reason=REASONS.get(int(code), ""), retry_after_ms=int(retry),
                        requests_used=int(used), tokens_used=int(tokens))

    def finish(self, pipe: Pipeline, info: KeyInfo, request_id: str, reserved: int, actual: int) -> None:
        """Queue on ``pipe``: free the concurrency slot and replace the reservation with the tokens really used.

        By hash (EVALSHA), not through redis-py's script helper, which asks SCRIPT EXISTS before every pipeline:
        a round trip per request. If Redis has lost the script (a restart), ``reload`` puts it back."""
        keys = _keys(info.key_id)[1:]
        pipe.evalsha(self._finish.sha, len(keys), *keys, request_id, reserved, actual)

    async def release(self, info: KeyInfo, request_id: str) -> None:
        """Free an admitted request's concurrency slot at once (it reserved no tokens)."""
        await self._finish(keys=_keys(info.key_id)[1:], args=[request_id, 0, 0])

    async def reload(self) -> None:
        await self._finish.registered_client.script_load(FINISH)
