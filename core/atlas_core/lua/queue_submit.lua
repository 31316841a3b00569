-- Queue a task, unless the queue is full or its owner's quota reached; keeps the owner's records bounded.
-- Needs queue_lib_finished.lua before it.
-- KEYS: 1 the priority's stream, 2 record, 3 events, 4 today's metrics, 5 owner index, 6-8 the p0, p1, p2
--   streams, 9 delayed, 10 the owner's active tasks, 11 recent tasks.
-- ARGV: 1 task id, 2 limit (work in the queue), 3 ttl, 4 now, 5 owner-index cutoff, 6 event data, 7 the owner's
--   quota (0: none), 8 records kept per owner, 9... the record's field/value pairs.
-- Returns {1, work in the queue with this task}, {0, 0} if the task exists already (a re-sent submission),
--   {2, work} when the queue is full, {3, the owner's active tasks} when the owner's quota is reached.
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 0} end
local quota, keep = tonumber(ARGV[7]), tonumber(ARGV[8])
-- The owner's active set: tasks that finished, or expired unfinished, leave it here (at most quota entries).
for _, id in ipairs(redis.call('ZRANGE', KEYS[10], 0, -1)) do
    local status = redis.call('HGET', 'atlas:task:' .. id, 'status')
    if (not status) or finished(status) then redis.call('ZREM', KEYS[10], id) end
end
local active = redis.call('ZCARD', KEYS[10])
if quota > 0 and active >= quota then return {3, active} end
local n = redis.call('XLEN', KEYS[6]) + redis.call('XLEN', KEYS[7]) + redis.call('XLEN', KEYS[8])
    + redis.call('ZCARD', KEYS[9])
if n >= tonumber(ARGV[2]) then return {2, n} end
-- The owner's records are bounded too: beyond `keep`, the oldest finished ones go (record, events, attempts).
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[5])
local excess = redis.call('ZCARD', KEYS[5]) + 1 - keep
if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[5], 0, excess + active)) do
        if excess <= 0 then break end
        local status = redis.call('HGET', 'atlas:task:' .. id, 'status')
        if (not status) or finished(status) then
            forget(id)
            redis.call('ZREM', KEYS[5], id)
            excess = excess - 1
        end
    end
end
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], unpack(ARGV, 9))
local entry = redis.call('XADD', KEYS[1], '*', 'id', ARGV[1])
redis.call('HSET', KEYS[2], 'entry', entry)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'type', 'queued', 'data', ARGV[6])
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('HINCRBY', KEYS[4], 'submitted', 1)
redis.call('EXPIRE', KEYS[4], 3456000)
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[5], ttl)
redis.call('ZADD', KEYS[10], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[10], ttl)
redis.call('ZADD', KEYS[11], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[11], 0, -201)
return {1, n + 1}
