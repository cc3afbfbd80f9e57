-- Best-available hold: the first row of the category (layout order) with `party` adjacent
-- available seats in one aisle-free block, leftmost first.
-- KEYS[1] show; ARGV: category, party, now ms, ttl ms, user.
-- Returns {hold id, seat, ...}, {'none', available seats of the category} or {'missing'}.
local p = KEYS[1]
local party, now = tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', p .. ':rows') == 0 then return {'missing'} end
local held = p .. ':held'
sweep(p, held, now)
local want = string.rep('.', party)
local available = 0
for _, r in ipairs(redis.call('LRANGE', p .. ':cat:' .. ARGV[1], 0, -1)) do
  local row = redis.call('HMGET', p .. ':row:' .. r, 'label', 'st', 'aisle')
  local label, st, aisle = row[1], row[2], row[3]
  local from = 1
  while true do
    local s = string.find(st, want, from, true)
    if not s then break end
    -- An aisle after seat s .. s+party-2 splits the block: search again past it.
    local a = string.find(string.sub(aisle, s, s + party - 2), '1', 1, true)
    if not a then
      local pos, seats = {}, {}
      for j = s, s + party - 1 do
        pos[#pos + 1] = {r, j}
        seats[#seats + 1] = label .. j
      end
      local hid = new_hold(p, held, {[r] = st}, pos, seats, now, tonumber(ARGV[4]), ARGV[5])
      return {hid, unpack(seats)}
    end
    from = s + a
  end
  local _, free = string.gsub(st, '%.', '')
  available = available + free
end
return {'none', tostring(available)}
