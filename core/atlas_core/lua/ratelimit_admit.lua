-- Admit a request (or, in tokens mode, a token reservation) against a user's and a key's limits, or refuse it
-- with how long to wait. Times come from Redis (TIME), so several proxies share one clock.
-- KEYS: 1-4 the user's requests log, token reservations, their total, concurrency slots; 5-8 the same of the key.
-- ARGV: 1 id, 2 tokens to reserve, 3 window ms, 4 slot ttl ms, 5 mode (request|tokens), 6-8 the user's rpm, tpm,
--   concurrency, 9-11 the key's (0: unlimited).
-- Returns {code (0 admitted, 1 rpm, 2 tpm, 3 concurrency, 4 more tokens than the whole tpm), retry ms,
--   scope (1 user, 2 key), the key's requests used, the key's tokens used}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, reserve, window, ttl, mode = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local limits = {{tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])},
                {tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])}}
local used, tokens = {}, {}
for s = 1, 2 do
  local req, tok, sum, conc = KEYS[4 * s - 3], KEYS[4 * s - 2], KEYS[4 * s - 1], KEYS[4 * s]
  redis.call('ZREMRANGEBYSCORE', req, '-inf', now - window)
  -- Reservations leaving the window are subtracted from the running total: O(expired), not O(window).
  local expired = redis.call('ZRANGEBYSCORE', tok, '-inf', now - window)
  if #expired > 0 then
    local freed = 0
    for _, m in ipairs(expired) do freed = freed + tonumber(string.match(m, '|(%d+)$')) end
    redis.call('DECRBY', sum, freed)
    redis.call('ZREMRANGEBYSCORE', tok, '-inf', now - window)
  end
  redis.call('ZREMRANGEBYSCORE', conc, '-inf', now)
  used[s] = redis.call('ZCARD', req)
  tokens[s] = tonumber(redis.call('GET', sum) or '0')
end
for s = 1, 2 do
  local rpm, tpm, cap = limits[s][1], limits[s][2], limits[s][3]
  if mode == 'request' and rpm > 0 and used[s] >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[4 * s - 3], 0, 0, 'WITHSCORES')
    return {1, tonumber(oldest[2]) + window - now, s, used[2], tokens[2]}
  end
  if tpm > 0 then
    if reserve > tpm then return {4, 0, s, used[2], tokens[2]} end
    if tokens[s] + reserve > tpm then
      local need, freed, retry = tokens[s] + reserve - tpm, 0, window
      local entries = redis.call('ZRANGE', KEYS[4 * s - 2], 0, -1, 'WITHSCORES')
      for i = 1, #entries, 2 do
        freed = freed + tonumber(string.match(entries[i], '|(%d+)$'))
        if freed >= need then retry = tonumber(entries[i + 1]) + window - now break end
      end
      return {2, retry, s, used[2], tokens[2]}
    end
  end
  if mode == 'request' and cap > 0 and redis.call('ZCARD', KEYS[4 * s]) >= cap then
    return {3, 1000, s, used[2], tokens[2]}
  end
end
for s = 1, 2 do
  local req, tok, sum, conc = KEYS[4 * s - 3], KEYS[4 * s - 2], KEYS[4 * s - 1], KEYS[4 * s]
  if mode == 'request' then
    redis.call('ZADD', req, now, id)
    redis.call('PEXPIRE', req, window)
    redis.call('ZADD', conc, now + ttl, id)
    redis.call('PEXPIRE', conc, ttl)
  end
  redis.call('ZADD', tok, now, id .. '|' .. string.format('%d', reserve))
  redis.call('INCRBY', sum, reserve)
  redis.call('PEXPIRE', tok, window)
  redis.call('PEXPIRE', sum, window)
end
return {0, 0, 0, used[2] + (mode == 'request' and 1 or 0), tokens[2] + reserve}
