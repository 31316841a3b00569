-- Settle a finished request: replace its token reservation with the tokens really used, free its slot.
-- KEYS: 1-3 the user's token reservations, their total, concurrency slots; 4-6 the same of the key.
-- ARGV: 1 id, 2 tokens reserved, 3 tokens used.
-- Returns 1.
for s = 0, 1 do
  local old = ARGV[1] .. '|' .. ARGV[2]
  local score = redis.call('ZSCORE', KEYS[3 * s + 1], old)
  if score then
    redis.call('ZREM', KEYS[3 * s + 1], old)
    redis.call('ZADD', KEYS[3 * s + 1], score, ARGV[1] .. '|' .. ARGV[3])
    redis.call('INCRBY', KEYS[3 * s + 2], tonumber(ARGV[3]) - tonumber(ARGV[2]))
  end
  redis.call('ZREM', KEYS[3 * s + 3], ARGV[1])
end
return 1
