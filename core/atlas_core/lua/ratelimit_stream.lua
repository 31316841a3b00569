-- Open (or keep open) an event stream against the user's and the key's caps on open streams; each entry
-- expires on its own, so a crashed proxy cannot leak slots.
-- KEYS: 1 the user's open streams, 2 the key's.
-- ARGV: 1 id, 2 ttl ms, 3 the user's cap, 4 the key's cap (0: none), 5 mode (open|refresh).
-- Returns 0 (admitted or refreshed), or 1 / 2 when the user's / key's cap is reached.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ARGV[5] == 'open' then
  for s = 1, 2 do
    redis.call('ZREMRANGEBYSCORE', KEYS[s], '-inf', now)
    local cap = tonumber(ARGV[2 + s])
    if cap > 0 and redis.call('ZCARD', KEYS[s]) >= cap then return s end
  end
end
for s = 1, 2 do
  redis.call('ZADD', KEYS[s], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[s], ttl)
end
return 0
