-- Hold of explicit seats: all of them or none.
-- KEYS[1] show; ARGV: now ms, ttl ms, user, seat id, ...
-- Returns {hold id, seat, ...}, {'taken', seat, ...} or {'missing'}.
local p = KEYS[1]
local now = tonumber(ARGV[1])
if redis.call('EXISTS', p .. ':rows') == 0 then return {'missing'} end
local held = p .. ':held'
sweep(p, held, now)
local rows, pos, seats, taken, seen = {}, {}, {}, {}, {}
for k = 4, #ARGV do
  local label, number = string.match(ARGV[k], '^(%u+)(%d+)$')
  local r = label and redis.call('HGET', p .. ':label', label)
  local i = tonumber(number)
  local ok = false
  if r and not seen[ARGV[k]] then
    rows[r] = rows[r] or redis.call('HGET', p .. ':row:' .. r, 'st')
    ok = i >= 1 and i <= #rows[r] and string.sub(rows[r], i, i) == '.'
  end
  seen[ARGV[k]] = true
  if ok then
    pos[#pos + 1] = {r, i}
    seats[#seats + 1] = ARGV[k]
  else
    taken[#taken + 1] = ARGV[k]
  end
end
if #taken > 0 or #seats == 0 then return {'taken', unpack(taken)} end
local hid = new_hold(p, held, rows, pos, seats, now, tonumber(ARGV[2]), ARGV[3])
return {hid, unpack(seats)}
