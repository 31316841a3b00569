-- Move due retries back into their streams (a task no longer queued, cancelled meanwhile, is only dropped).
-- KEYS: 1 delayed.
-- ARGV: 1 now, 2 how many at most.
-- Returns how many were due.
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
