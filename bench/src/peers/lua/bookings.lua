-- Every booking of a show: {id, seats joined by ',', status, ...}. KEYS[1] show.
local out = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[1] .. ':bookings', 0, -1)) do
  local f = redis.call('HMGET', 'mpb:booking:' .. id, 'seats', 'status')
  out[#out + 1] = id
  out[#out + 1] = f[1]
  out[#out + 1] = f[2]
end
return out
