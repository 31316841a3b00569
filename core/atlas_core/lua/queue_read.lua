-- Read new entries, streams in the given order, in one round trip.
-- KEYS: the streams, in reading order.
-- ARGV: 1 group, 2 consumer, 3 count.
-- Returns {1, {{stream, id, fields}...}}, or {0, {last-delivered id per stream}} when every stream is empty (the
--   ids to block on without missing an entry added in between).
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
