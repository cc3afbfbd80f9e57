-- Release: the hold's seats that are still its own become available. ARGV: hold id, user.
-- Returns {'ok'} or {'missing'}.
local h = 'mpb:hold:' .. ARGV[1]
local f = redis.call('HMGET', h, 'show', 'user', 'pos', 'exp', 'state')
if not f[1] or f[2] ~= ARGV[2] or f[5] ~= 'held' then return {'missing'} end
local p = f[1]
local rows = {}
give_back(p, p .. ':held', rows, ARGV[1], f[3], f[4])
store(p, rows)
redis.call('ZREM', p .. ':exp', ARGV[1])
redis.call('HSET', h, 'state', 'released')
return {'ok'}
