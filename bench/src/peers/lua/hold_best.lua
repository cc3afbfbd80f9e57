-- Best-available hold: the first row of the category (layout order) with `party` adjacent
-- available seats in one aisle-free block, leftmost first.
-- KEYS[1] show; ARGV: category, party, now ms, ttl ms, user.
-- Returns {hold id, seat, ...}, {'none', available seats of the category} or {'missing'}.
local p = KEYS[1]
local party, now = tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', p .. ':rows') == 0 then return {'missing'} end
local held = p .. ':held'
local available = 0
for _, r in ipairs(redis.call('LRANGE', p .. ':cat:' .. ARGV[1], 0, -1)) do
  local row = redis.call('HMGET', p .. ':row:' .. r, 'label', 'st', 'aisle')
  local label, st, aisle = row[1], row[2], row[3]
  local run = 0
  for i = 1, #st do
    if free(held, r, i, string.sub(st, i, i), now) then
      run = run + 1
      available = available + 1
      if run == party then
        local pos, seats = {}, {}
        for j = i - party + 1, i do
          pos[#pos + 1] = {r, j}
          seats[#seats + 1] = label .. j
        end
        local hid = new_hold(p, held, {[r] = st}, pos, seats, now, tonumber(ARGV[4]), ARGV[5])
        return {hid, unpack(seats)}
      end
    else
      run = 0
    end
    if string.sub(aisle, i, i) == '1' then run = 0 end
  end
end
return {'none', tostring(available)}
