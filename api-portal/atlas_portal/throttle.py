"""Login throttling by name and by client address, with backoff rather than lock-out.

Three counters of failed (or in-flight) logins over a 15-minute window, each with its own free allowance and an
exponential backoff once it is spent:

| scope | free | backoff cap | stops |
|---|---|---|---|
| name + address | 5 | 15 min | one attacker hammering one account |
| address | 20 | 15 min | one attacker trying many names (credential stuffing) |
| name | 20 | 30 s | many addresses against one account, without ever locking its owner out for long |

An attempt is counted *before* the password is checked (parallel guesses cannot all slip under a limit) and a
success takes it back (address) or clears the account's counters (name, name + address). The admin's worst case is
thus a 30-second wait per attempt while a distributed attack goes on, and ``atlas admin recover`` on the host clears
it at once. Names are hashed in Redis keys, so their size is fixed whatever a client sends.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Sequence

from redis.asyncio import Redis

WINDOW_S = 900
# (free attempts, backoff cap in seconds) per scope, in the order of the keys below
SCOPES = ((5, 900), (20, 900), (20, 30))

# KEYS: for each scope its counter and its blocked-until key. ARGV: now (ms), window (s), then free and cap per
# scope. Returns the wait in ms (0: go ahead; the attempt is then counted).
ATTEMPT = """
local now = tonumber(ARGV[1])
for s = 0, 2 do
  local until_ = tonumber(redis.call('GET', KEYS[2 * s + 2]) or '0')
  if until_ > now then return until_ - now end
end
for s = 0, 2 do
  local n = redis.call('INCR', KEYS[2 * s + 1])
  redis.call('EXPIRE', KEYS[2 * s + 1], tonumber(ARGV[2]), 'NX')
  local free, cap = tonumber(ARGV[3 + 2 * s]), tonumber(ARGV[4 + 2 * s])
  if n > free then
    local wait = math.min(cap, 2 ^ math.min(n - free - 1, 20)) * 1000
    redis.call('SET', KEYS[2 * s + 2], now + wait, 'PX', math.floor(wait))
  end
end
return 0
"""

# A success: the account's counters and blocks go, the address gets its attempt back.
SUCCESS = """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[5], KEYS[6])
if tonumber(redis.call('GET', KEYS[3]) or '0') > 0 then redis.call('DECR', KEYS[3]) end
return 1
"""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def address_of(host: str | None, forwarded: str | None, trusted: Sequence[str]) -> str:
    """The client's address: the peer's, or, when the peer is a trusted reverse proxy, the right-most address
    in X-Forwarded-For that is not one of ours. IPv6 addresses count by their /64 (one host owns a whole /64)."""
    address = host or "unknown"
    if forwarded and address in trusted:
        for hop in reversed([h.strip() for h in forwarded.split(",")]):
            address = hop
            if hop not in trusted:
                break
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return _digest(address)  # not an address at all (a test client): still a fixed-size key
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def _who(name: str) -> str:
    return _digest(name.strip().lower())


def _keys(who: str, generation: str, address: str) -> list[str]:
    """Counter and block of each scope. The pair's key includes the account's generation, which recovery bumps:
    that forgets every address's counters for the account at once."""
    scopes = [f"pair:{_digest(f'{who}|{generation}|{address}')}", f"ip:{address}", f"name:{who}"]
    return [key for scope in scopes for key in (f"atlas:login:{scope}", f"atlas:login:{scope}:until")]


class Throttle:
    def __init__(self, redis: Redis) -> None:
        self._attempt = redis.register_script(ATTEMPT)
        self._success = redis.register_script(SUCCESS)
        self._redis = redis

    async def _keys(self, name: str, address: str) -> list[str]:
        who = _who(name)
        generation = await self._redis.get(f"atlas:login:gen:{who}")
        return _keys(who, generation.decode() if isinstance(generation, bytes) else "0", address)

    async def attempt(self, name: str, address: str) -> int:
        """Seconds to wait before trying again (0: go ahead; the attempt is counted)."""
        limits = [x for scope in SCOPES for x in scope]
        wait_ms = int(await self._attempt(keys=await self._keys(name, address),
                                          args=[int(time.time() * 1000), WINDOW_S, *limits]))
        return math.ceil(wait_ms / 1000)

    async def succeeded(self, name: str, address: str) -> None:
        await self._success(keys=await self._keys(name, address), args=[])

    async def clear(self, name: str) -> None:
        """Forget the account's counters and blocks, from every address (recovery on the host)."""
        who = _who(name)
        keys = _keys(who, "", "")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys[4], keys[5])
            pipe.incr(f"atlas:login:gen:{who}")
            pipe.expire(f"atlas:login:gen:{who}", 2 * WINDOW_S)  # past every counter and block it forgets
            await pipe.execute()
