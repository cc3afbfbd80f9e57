-- Release: the hold's seats that are still its own become available. ARGV: hold id, user.
-- Returns {'ok'} or {'missing'}.
local h = 'mpb:hold:' .. ARGV[1]
local f = redis.call('HMGET', h, 'show', 'user', 'pos', 'exp', 'state')
if not f[1] or f[2] ~= ARGV[2] or f[5] ~= 'held' then return {'missing'} end
local p = f[1]
local held, mine = p .. ':held', ARGV[1] .. ':' .. f[4]
local rows = {}
for r, i in string.gmatch(f[3], '(%d+):(%d+)') do
  if redis.call('HGET', held, r .. ':' .. i) == mine then
    rows[r] = put(rows[r] or redis.call('HGET', p .. ':row:' .. r, 'st'), tonumber(i), '.')
    redis.call('HDEL', held, r .. ':' .. i)
  end
end
for r, st in pairs(rows) do redis.call('HSET', p .. ':row:' .. r, 'st', st) end
redis.call('ZREM', p .. ':exp', ARGV[1])
redis.call('HSET', h, 'state', 'released')
return {'ok'}
