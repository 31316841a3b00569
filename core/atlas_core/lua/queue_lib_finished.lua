-- Functions, not a script: atlas_core.queue puts them before the scripts that ask whether a task has its outcome.
-- finished(status): whether a task with this status has its outcome already (it never runs again).
-- forget(id): delete a task's record, events and attempts.
-- KEYS, ARGV: none of their own (they read the calling script's).
local function finished(status)
    return status == 'succeeded' or status == 'failed' or status == 'cancelled' or status == 'dead'
end
local function forget(id)
    redis.call('DEL', 'atlas:task:' .. id, 'atlas:task:' .. id .. ':events', 'atlas:task:' .. id .. ':attempts')
end
