-- Acknowledge the entry and store the task's outcome, once. Needs queue_lib_finished.lua before it.
-- KEYS: 1 stream, 2 record, 3 events, 4 attempts, 5 today's metrics, 6 dead-letter stream, 7 the owner's
--   active tasks.
-- ARGV: 1 group, 2 entry, 3 ttl, 4 status, 5 event data, 6 dead-letter data ('' = none), 7 metric increments
--   (JSON), 8 task id, 9... the record's field/value pairs.
-- Returns 1 when written, 0 when the task was already finished.
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[7], ARGV[8])
local status = redis.call('HGET', KEYS[2], 'status')
if (not status) or finished(status) then
    return 0
end
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'status', ARGV[4], unpack(ARGV, 9))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'type', 'done', 'data', ARGV[5])
if ARGV[6] ~= '' then
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', 10000, '*', 'data', ARGV[6])
end
for _, key in ipairs({KEYS[2], KEYS[3], KEYS[4]}) do redis.call('EXPIRE', key, ttl) end
for field, by in pairs(cjson.decode(ARGV[7])) do redis.call('HINCRBY', KEYS[5], field, by) end
redis.call('EXPIRE', KEYS[5], 3456000)
return 1
