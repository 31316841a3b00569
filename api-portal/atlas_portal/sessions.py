"""Portal logins as server-side sessions in Redis, so they can end before their token expires: logout ends one,
a password change, a reset or a deactivation end all of a user's at once (the next request is refused).

``atlas:portal:session:{sid}`` holds the user id and expires with the token; ``atlas:portal:sessions:{user}``
lists a user's sessions by expiry, at most ``cap`` of them (a new login ends the oldest), so logins cannot grow
Redis without bound."""

from __future__ import annotations

import secrets
import time

from redis.asyncio import Redis


def _session(sid: str) -> str:
    return f"atlas:portal:session:{sid}"


def _index(user_id: int) -> str:
    return f"atlas:portal:sessions:{user_id}"


# KEYS: session, user's index. ARGV: sid, user id, ttl, now, cap.
CREATE = """
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], tonumber(ARGV[4]) + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if extra > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra - 1)) do
    redis.call('DEL', 'atlas:portal:session:' .. old)
    redis.call('ZREM', KEYS[2], old)
  end
end
return 1
"""

# KEYS: user's index. Ends every session of the user.
END_ALL = """
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  redis.call('DEL', 'atlas:portal:session:' .. sid)
end
redis.call('DEL', KEYS[1])
return 1
"""


class Sessions:
    def __init__(self, redis: Redis, ttl_s: int, cap: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._cap = cap
        self._create = redis.register_script(CREATE)
        self._end_all = redis.register_script(END_ALL)

    async def create(self, user_id: int) -> str:
        sid = secrets.token_urlsafe(18)
        await self._create(keys=[_session(sid), _index(user_id)],
                           args=[sid, user_id, self._ttl_s, int(time.time()), self._cap])
        return sid

    async def valid(self, user_id: int, sid: str) -> bool:
        return await self._redis.get(_session(sid)) == str(user_id).encode()

    async def end(self, user_id: int, sid: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(_session(sid))
            pipe.zrem(_index(user_id), sid)
            await pipe.execute()

    async def end_all(self, user_id: int) -> None:
        await self._end_all(keys=[_index(user_id)], args=[])
