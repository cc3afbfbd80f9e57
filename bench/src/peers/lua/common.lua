-- Shared by every script (prepended): seat states and expiry.
-- A show `p` (KEYS[1], "mpb:s<id>") is: p:rows (row count), p:row:<r> (hash: label, st, aisle),
-- p:label (hash: label -> r), p:cat:<category> (list of its rows in layout order), p:held
-- (hash: "<r>:<seat>" -> "<hold id>:<expires ms>" for held seats), p:exp (sorted set: hold ids
-- by expiry), p:bookings (list of ids).
-- st has one byte per seat: '.' available, 'h' held, 's' sold; aisle has '1' where an aisle
-- follows the seat. Holds are mpb:hold:<id>, bookings mpb:booking:<id>.

-- Seat i of row r, whose byte in st is c: available, or held by a hold that has expired?
local function free(held, r, i, c, now)
  if c == '.' then return true end
  if c ~= 'h' then return false end
  local v = redis.call('HGET', held, r .. ':' .. i)
  return v == false or tonumber(string.match(v, ':(%d+)$')) <= now
end

-- st with byte i replaced by c.
local function put(st, i, c)
  return string.sub(st, 1, i - 1) .. c .. string.sub(st, i + 1)
end

-- Writes back the rows' new state strings ({r = st}).
local function store(p, rows)
  for r, st in pairs(rows) do redis.call('HSET', p .. ':row:' .. r, 'st', st) end
end

-- Makes the seats at `pos` ("r:i,...") that hold `hid` (expiring at `exp`) still holds
-- available again, the new state strings going into `rows`.
local function give_back(p, held, rows, hid, pos, exp)
  local mine = hid .. ':' .. exp
  for r, i in string.gmatch(pos, '(%d+):(%d+)') do
    if redis.call('HGET', held, r .. ':' .. i) == mine then
      rows[r] = put(rows[r] or redis.call('HGET', p .. ':row:' .. r, 'st'), tonumber(i), '.')
      redis.call('HDEL', held, r .. ':' .. i)
    end
  end
end

-- Frees the seats of the show's holds that expired by `now` (holds sweep before they search,
-- so the search itself reads only the state strings).
local function sweep(p, held, now)
  local due = redis.call('ZRANGEBYSCORE', p .. ':exp', '-inf', now)
  if #due == 0 then return end
  local rows = {}
  for _, hid in ipairs(due) do
    local f = redis.call('HMGET', 'mpb:hold:' .. hid, 'pos', 'exp', 'state')
    if f[3] == 'held' then
      give_back(p, held, rows, hid, f[1], f[2])
      redis.call('HSET', 'mpb:hold:' .. hid, 'state', 'expired')
    end
  end
  store(p, rows)
  redis.call('ZREMRANGEBYSCORE', p .. ':exp', '-inf', now)
end

-- Writes a new hold over the seats at `pos` ({{r, i}, ...}) named `seats`; returns its id.
local function new_hold(p, held, rows, pos, seats, now, ttl, user)
  local hid = tostring(redis.call('INCR', 'mpb:seq:hold'))
  local exp = string.format('%.0f', now + ttl)
  local places = {}
  for k, at in ipairs(pos) do
    local r, i = at[1], at[2]
    rows[r] = put(rows[r], i, 'h')
    redis.call('HSET', held, r .. ':' .. i, hid .. ':' .. exp)
    places[k] = r .. ':' .. i
  end
  store(p, rows)
  redis.call('HSET', 'mpb:hold:' .. hid, 'show', p, 'user', user, 'pos', table.concat(places, ','),
    'seats', table.concat(seats, ','), 'exp', exp, 'state', 'held')
  redis.call('ZADD', p .. ':exp', exp, hid)
  return hid
end
