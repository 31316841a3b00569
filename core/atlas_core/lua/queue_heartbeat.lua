-- Keep an entry: reset its idle time, and the task's TTLs (a task may run longer than them), if this consumer
-- still holds it. Needs queue_lib_revoked.lua before it.
-- KEYS: 1 stream, 2 record, 3 events, 4 attempts, 5 revoked keys and owners.
-- ARGV: 1 group, 2 consumer, 3 entry, 4 now, 5 ttl.
-- Returns {held (0/1), cancel: '0', '1' (its owner cancelled it) or 'revoked' (its key or owner was revoked)}.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not (pending[1] and pending[1][2] == ARGV[2]) or redis.call('EXISTS', KEYS[2]) == 0 then return {0, '0'} end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
redis.call('HSET', KEYS[2], 'heartbeat', ARGV[4])
for i = 2, 4 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[5])) end
if revoked(KEYS[2], KEYS[5]) then return {1, 'revoked'} end
return {1, redis.call('HGET', KEYS[2], 'cancel') or '0'}
