-- Admit a solve into rag-api's slots, which every replica shares, so that all of them together run at most the
-- limit at once. Slots past their expiry (the solve's deadline plus a grace) are dropped first: a replica that
-- died holding slots frees them by itself. Times come from Redis (TIME), so the replicas share one clock.
-- KEYS: 1 the slots (a sorted set: member a solve id, score when its slot expires, ms since the epoch).
-- ARGV: 1 the solve id ('' takes nothing: only counts), 2 the limit, 3 how long the slot may be held at most, ms.
-- Returns {1 taken or 0 not, the slots held after}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if ARGV[1] == '' or held >= tonumber(ARGV[2]) then
  return {0, held}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
-- The set lives as long as its longest slot: slots a dead replica left in a cluster gone idle go with it.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return {1, held + 1}
