"""The task queue's Lua scripts (see ``atlas_core.queue`` for the layout). Every multi-key step is one script, so
it is atomic; keys built inside a script (``'atlas:task:' .. id``) all match the queue's ACL patterns."""

from __future__ import annotations

# Prepended to the scripts that ask whether a task has its outcome already.
_FINISHED = """
local function finished(status)
    return status == 'succeeded' or status == 'failed' or status == 'cancelled' or status == 'dead'
end
local function forget(id)
    redis.call('DEL', 'atlas:task:' .. id, 'atlas:task:' .. id .. ':events', 'atlas:task:' .. id .. ':attempts')
end
"""

# KEYS: stream, record, events, metrics, owner index, p0, p1, p2, delayed, owner's active tasks, recent tasks.
# ARGV: task id, limit, ttl, now, owner-index cutoff, event data, owner's quota (0: none), records kept per owner,
# then the record's field/value pairs.
# Returns {1, work in the queue with this task}, {0, 0} if the task exists already (a re-sent submission),
# {2, work} when the queue is full, {3, the owner's active tasks} when the owner's quota is reached.
SUBMIT = _FINISHED + """
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
"""

# Whether the task's key or owner was revoked after it was submitted (the portal keeps the times in a sorted set).
_REVOKED = """
local function revoked(record, keys_revoked)
    local at = tonumber(redis.call('HGET', record, 'submitted_at') or '0')
    local key = redis.call('HGET', record, 'key_id') or ''
    local by_key = key ~= '' and redis.call('ZSCORE', keys_revoked, 'k:' .. key)
    local by_owner = redis.call('ZSCORE', keys_revoked, 'u:' .. (redis.call('HGET', record, 'owner') or ''))
    return (by_key and tonumber(by_key) >= at) or (by_owner and tonumber(by_owner) >= at)
end
"""

# A worker takes a delivered entry. KEYS: record, events, attempts, revoked. ARGV: consumer, now, entry, ttl.
# Returns {state, deliveries, record, attempts}; state is run, skip (finished), gone (expired) or revoked (its key
# or owner was revoked: the worker finishes it as cancelled).
BEGIN = _FINISHED + _REVOKED + """
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
"""

# Keep an entry: reset its idle time, and the task's TTLs (a task may run longer than them), if this consumer
# still holds it. KEYS: stream, record, events, attempts, revoked. ARGV: group, consumer, entry, now, ttl.
# Returns {held (0/1), cancel: '0', '1' (its owner cancelled it) or 'revoked' (its key or owner was revoked)}.
HEARTBEAT = _REVOKED + """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not (pending[1] and pending[1][2] == ARGV[2]) or redis.call('EXISTS', KEYS[2]) == 0 then return {0, '0'} end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
redis.call('HSET', KEYS[2], 'heartbeat', ARGV[4])
for i = 2, 4 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[5])) end
if revoked(KEYS[2], KEYS[5]) then return {1, 'revoked'} end
return {1, redis.call('HGET', KEYS[2], 'cancel') or '0'}
"""

# Give a running task back at shutdown, if this consumer still holds it and runs it: the delivery does not
# count, and the entry looks long idle, so the next reclaim by any worker takes it at once.
# KEYS: stream, record, events. ARGV: group, consumer, entry. Returns 1 if handed back.
HAND_BACK = """
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
"""

# Record an attempt once (a re-sent call must not store it twice), and meter its tokens with it: the usage entry
# goes in exactly when the attempt does. KEYS: attempts, usage stream. ARGV: attempt JSON, n, ttl, usage maxlen,
# then the usage entry's field/value pairs ('' as the first: nothing to meter).
ADD_ATTEMPT = """
for _, x in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    local a = cjson.decode(x)
    if a.kind == 'attempt' and a.n == tonumber(ARGV[2]) then return 0 end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if ARGV[5] ~= '' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[4]), '*', unpack(ARGV, 5))
end
return 1
"""

# Store the outcome once. KEYS: stream, record, events, attempts, metrics, dead, owner's active tasks.
# ARGV: group, entry, ttl, status, event data, dead-letter data ('' = none), metric increments (JSON), task id,
# then the record's field/value pairs. Returns 1 when written, 0 when the task was already finished.
FINISH = _FINISHED + """
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
"""

# Back off and try again later, if this consumer runs the task (otherwise the entry is left alone: pending, it
# is reclaimed; or finished, it is dropped). KEYS: stream, record, events, delayed.
# ARGV: group, entry, due, member, event, counted (1: this delivery counts toward the limit), last error, consumer.
RETRY = _FINISHED + """
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
"""

# Read new entries, streams in the given order, in one round trip. KEYS: the streams in reading order.
# ARGV: group, consumer, count. Returns {1, {{stream, id, fields}...}}, or {0, {last-delivered id per stream}}
# when every stream is empty (the ids to block on without missing an entry added in between).
READ = """
local count = tonumber(ARGV[3])
local out = {}
for _, key in ipairs(KEYS) do
    if count <= 0 then break end
    local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', count, 'STREAMS', key, '>')
    if got then
        for _, e in ipairs(got[1][2]) do
            table.insert(out, {key, e[1], e[2]})
            count = count - 1
        end
    end
end
if #out > 0 then return {1, out} end
local ids = {}
for _, key in ipairs(KEYS) do
    local last = '0'
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
        local name, id
        for j = 1, #g, 2 do
            if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then id = g[j + 1] end
        end
        if name == ARGV[1] then last = id end
    end
    table.insert(ids, last)
end
return {0, ids}
"""

# Move due retries back into their streams. KEYS: delayed. ARGV: now, how many.
PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
    local sep = string.find(member, '|', 1, true)
    local priority, id = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
    redis.call('ZREM', KEYS[1], member)
    local record = 'atlas:task:' .. id
    if redis.call('HGET', record, 'status') == 'queued' then
        local entry = redis.call('XADD', 'atlas:tasks:' .. priority, '*', 'id', id)
        redis.call('HSET', record, 'entry', entry)
    end
end
return #due
"""

# Cancel. KEYS: record, events, delayed, metrics, owner's active tasks. ARGV: now, ttl, message.
# Returns the status after the call.
CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status == 'running' then
    if redis.call('HGET', KEYS[1], 'cancel') ~= '1' then
        redis.call('HSET', KEYS[1], 'cancel', '1')
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'type', 'cancelling', 'data', '{}')
    end
    return 'cancelling'
end
if status ~= 'queued' then return status end
local priority = redis.call('HGET', KEYS[1], 'priority')
local id = redis.call('HGET', KEYS[1], 'id')
local entry = redis.call('HGET', KEYS[1], 'entry')
if entry and entry ~= '' then redis.call('XDEL', 'atlas:tasks:' .. priority, entry) end
redis.call('ZREM', KEYS[3], priority .. '|' .. id)
redis.call('ZREM', KEYS[5], id)
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'stop_reason', 'CANCELLED', 'finished_at', ARGV[1], 'cancel', '1',
    'message', ARGV[3])
local data = cjson.encode({status='cancelled', stop_reason='CANCELLED', message=ARGV[3]})
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'type', 'done', 'data', data)
redis.call('HINCRBY', KEYS[4], 'cancelled', 1)
return 'cancelled'
"""
