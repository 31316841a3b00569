-- Back off and try again later, if this consumer runs the task (otherwise the entry is left alone: pending, it
-- is reclaimed; or finished, it is dropped). Needs queue_lib_finished.lua before it.
-- KEYS: 1 stream, 2 record, 3 events, 4 delayed.
-- ARGV: 1 group, 2 entry, 3 due time, 4 delayed member (priority|id), 5 event data, 6 counted (1: this delivery
--   counts toward the limit), 7 last error, 8 consumer.
-- Returns 1 when queued again, 0 when the task is not this consumer's.
local status = redis.call('HGET', KEYS[2], 'status')
if status ~= 'running' or redis.call('HGET', KEYS[2], 'worker') ~= ARGV[8] then
    if (not status) or finished(status) then
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[1], ARGV[2])
    end
    return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[6] ~= '1' then
    redis.call('HINCRBY', KEYS[2], 'deliveries', -1)
    redis.call('HINCRBY', KEYS[2], 'outages', 1)
end
redis.call('HSET', KEYS[2], 'status', 'queued', 'entry', '', 'worker', '', 'last_error', ARGV[7])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'type', 'retry', 'data', ARGV[5])
return 1
