-- Record an attempt once (a re-sent call must not store it twice), and meter its tokens with it: the usage
-- entry goes in exactly when the attempt does.
-- KEYS: 1 attempts, 2 usage stream.
-- ARGV: 1 attempt JSON, 2 its number n, 3 ttl, 4 usage stream maxlen, 5... the usage entry's field/value pairs
--   ('' as the first: nothing to meter).
-- Returns 1 when recorded, 0 when attempt n was recorded already.
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
