-- The seat map: {label, states, aisles} per row, expired holds shown available ('.').
-- KEYS[1] show; ARGV: now ms. Returns {'missing'} for an unknown show.
local p = KEYS[1]
local now = tonumber(ARGV[1])
local n = redis.call('GET', p .. ':rows')
if not n then return {'missing'} end
local held, out = p .. ':held', {}
for r = 0, tonumber(n) - 1 do
  local row = redis.call('HMGET', p .. ':row:' .. r, 'label', 'st', 'aisle')
  local st = row[2]
  for i = 1, #st do
    if string.sub(st, i, i) == 'h' and free(held, r, i, 'h', now) then st = put(st, i, '.') end
  end
  out[#out + 1] = row[1]
  out[#out + 1] = st
  out[#out + 1] = row[3]
end
return out
