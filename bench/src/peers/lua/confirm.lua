-- Confirm (after the in-process payment): the hold's seats become sold and a booking is
-- written, or nothing changes. ARGV: hold id, user, now ms.
-- Returns {booking id, seats joined by ','}, {'missing'}, {'inactive'} or {'expired'}.
local h = 'mpb:hold:' .. ARGV[1]
local f = redis.call('HMGET', h, 'show', 'user', 'pos', 'seats', 'exp', 'state')
if not f[1] or f[2] ~= ARGV[2] then return {'missing'} end
if f[6] ~= 'held' then return {'inactive'} end
if tonumber(f[5]) <= tonumber(ARGV[3]) then return {'expired'} end
local p = f[1]
local held, mine = p .. ':held', ARGV[1] .. ':' .. f[5]
-- Every check before the first write: a script that fails half-way is not rolled back.
for r, i in string.gmatch(f[3], '(%d+):(%d+)') do
  if redis.call('HGET', held, r .. ':' .. i) ~= mine then return {'expired'} end
end
local rows = {}
for r, i in string.gmatch(f[3], '(%d+):(%d+)') do
  rows[r] = put(rows[r] or redis.call('HGET', p .. ':row:' .. r, 'st'), tonumber(i), 's')
  redis.call('HDEL', held, r .. ':' .. i)
end
store(p, rows)
local bid = tostring(redis.call('INCR', 'mpb:seq:booking'))
redis.call('HSET', 'mpb:booking:' .. bid, 'hold', ARGV[1], 'show', p, 'user', ARGV[2],
  'seats', f[4], 'status', 'confirmed')
redis.call('RPUSH', p .. ':bookings', bid)
redis.call('ZREM', p .. ':exp', ARGV[1])
redis.call('HSET', h, 'state', 'confirmed')
return {bid, f[4]}
