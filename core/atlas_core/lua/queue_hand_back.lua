-- Give a running task back at shutdown, if this consumer still holds it and runs it: the delivery does not
-- count, and the entry looks long idle, so the next reclaim by any worker takes it at once.
-- KEYS: 1 stream, 2 record, 3 events.
-- ARGV: 1 group, 2 consumer, 3 entry.
-- Returns 1 if handed back, else 0.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not (pending[1] and pending[1][2] == ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[2], 'status') ~= 'running' or redis.call('HGET', KEYS[2], 'worker') ~= ARGV[2] then
    return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', 1000000000, 'JUSTID')
redis.call('HINCRBY', KEYS[2], 'deliveries', -1)
redis.call('HSET', KEYS[2], 'status', 'queued', 'worker', '')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'type', 'handed_back', 'data', cjson.encode({worker=ARGV[2]}))
return 1
