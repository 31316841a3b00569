-- Functions, not a script: atlas_core.queue puts them before the scripts that stop revoked work.
-- revoked(record, keys_revoked): whether the task's key or owner was revoked after it was submitted (the portal
-- keeps the revocation times in a sorted set: 'k:' .. key id and 'u:' .. owner, scored by time).
-- KEYS, ARGV: none of their own (they read the calling script's).
local function revoked(record, keys_revoked)
    local at = tonumber(redis.call('HGET', record, 'submitted_at') or '0')
    local key = redis.call('HGET', record, 'key_id') or ''
    local by_key = key ~= '' and redis.call('ZSCORE', keys_revoked, 'k:' .. key)
    local by_owner = redis.call('ZSCORE', keys_revoked, 'u:' .. (redis.call('HGET', record, 'owner') or ''))
    return (by_key and tonumber(by_key) >= at) or (by_owner and tonumber(by_owner) >= at)
end
