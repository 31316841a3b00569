-- Cancel a task: one waiting is cancelled at once, one running is flagged for its worker to stop.
-- KEYS: 1 record, 2 events, 3 delayed, 4 today's metrics, 5 the owner's active tasks.
-- ARGV: 1 now, 2 ttl, 3 message.
-- Returns the status after the call: cancelled, cancelling, the finished status it had, or '' (no such task).
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
