-- A worker takes a delivered entry: the task becomes running (noting an interruption when it took it over).
-- Needs queue_lib_finished.lua and queue_lib_revoked.lua before it.
-- KEYS: 1 record, 2 events, 3 attempts, 4 revoked keys and owners.
-- ARGV: 1 consumer, 2 now, 3 entry, 4 ttl.
-- Returns {state, deliveries, record, attempts}; state is run, skip (finished), gone (expired) or revoked (its
--   key or owner was revoked: the worker finishes it as cancelled).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'gone', 0} end
if finished(status) then
    return {'skip', 0}
end
if revoked(KEYS[1], KEYS[4]) then
    return {'revoked', 0, redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[3], 0, -1)}
end
local previous = redis.call('HGET', KEYS[1], 'worker') or ''
local ttl = tonumber(ARGV[4])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl) end
if status == 'running' and previous == ARGV[1] and redis.call('HGET', KEYS[1], 'entry') == ARGV[3] then
    -- the same call again (its reply was lost): nothing new has happened
    return {'run', tonumber(redis.call('HGET', KEYS[1], 'deliveries')), redis.call('HGETALL', KEYS[1]),
            redis.call('LRANGE', KEYS[3], 0, -1)}
end
local deliveries = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[1], 'entry', ARGV[3], 'heartbeat', ARGV[2])
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[2])
if status == 'running' then
    local note = cjson.encode({kind='interruption', worker=previous, reclaimed_by=ARGV[1], at=tonumber(ARGV[2]),
        message='worker ' .. previous .. ' stopped while running this task; ' .. ARGV[1] .. ' took it over'})
    redis.call('RPUSH', KEYS[3], note)
    redis.call('EXPIRE', KEYS[3], ttl)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'type', 'interrupted', 'data', note)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'type', 'started',
    'data', cjson.encode({worker=ARGV[1], delivery=deliveries}))
return {'run', deliveries, redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[3], 0, -1)}
