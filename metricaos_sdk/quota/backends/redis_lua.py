"""The Redis store's Lua scripts: the steps of ``reservations.py``, run atomically inside Redis.

Per customer (one hash slot, ``{customer}``): ``:r`` hash bucket -> amount held by live reservations,
``:a`` hash reservation -> its holds (``bucket<TAB>amount…``), ``:x`` sorted set reservation -> lease end
(ms, Redis clock), and one ``:u:<bucket>`` counter per bucket that expires with the bucket. Each script
first drops reservations whose lease is over. Numbers go to Redis through ``%.0f``: Lua's own number
formatting would round integers above 10^14.

KEYS = r, a, x, then the used counters; ARGV = reservation id, lease ms, demand count, then per demand:
amount, enforce (0/1), overflow index (0-based), bucket count, and per bucket: KEYS index, name, limit,
expiry (ms).
"""

from __future__ import annotations

__all__ = ["BALANCES", "RELEASE", "RESERVE", "SETTLE", "SETTLE_ONCE"]

_COMMON = r"""
local rk, ak, xk = KEYS[1], KEYS[2], KEYS[3]
local function fmt(n) return string.format('%.0f', n) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function unhold(rid)
  local alloc = redis.call('HGET', ak, rid)
  if alloc then
    local p = {}
    for piece in string.gmatch(alloc, '[^\t]+') do p[#p + 1] = piece end
    for i = 1, #p, 2 do
      if redis.call('HINCRBY', rk, p[i], '-' .. p[i + 1]) <= 0 then redis.call('HDEL', rk, p[i]) end
    end
    redis.call('HDEL', ak, rid)
  end
  redis.call('ZREM', xk, rid)
end
local function purge(now)
  for _, rid in ipairs(redis.call('ZRANGEBYSCORE', xk, '-inf', now)) do unhold(rid) end
end
local function parse()
  local demands, i = {}, 4
  for d = 1, tonumber(ARGV[3]) do
    local dem = {amount = tonumber(ARGV[i]), enforce = ARGV[i + 1] == '1', overflow = tonumber(ARGV[i + 2]) + 1,
                 buckets = {}}
    local nb = tonumber(ARGV[i + 3])
    i = i + 4
    for b = 1, nb do
      dem.buckets[b] = {key = KEYS[tonumber(ARGV[i])], name = ARGV[i + 1], limit = tonumber(ARGV[i + 2]),
                        exp = tonumber(ARGV[i + 3])}
      i = i + 4
    end
    demands[d] = dem
  end
  return demands
end
local function state(demands)
  local used, held = {}, {}
  for _, d in ipairs(demands) do
    for _, b in ipairs(d.buckets) do
      if used[b.name] == nil then
        used[b.name] = tonumber(redis.call('GET', b.key) or '0')
        held[b.name] = tonumber(redis.call('HGET', rk, b.name) or '0')
      end
    end
  end
  return used, held
end
local function draw(d, amount, used, held, out)
  local left = amount
  for _, b in ipairs(d.buckets) do
    if left <= 0 then break end
    local take = math.min(b.limit - used[b.name] - held[b.name] - (out[b.name] or 0), left)
    if take > 0 then
      out[b.name] = (out[b.name] or 0) + take
      left = left - take
    end
  end
  if left > 0 then
    local name = d.buckets[d.overflow].name
    out[name] = (out[name] or 0) + left
  end
  return math.max(left, 0)
end
local function balance(d, used, held)
  local u, h, l = 0, 0, 0
  for _, b in ipairs(d.buckets) do
    u = u + used[b.name]
    h = h + held[b.name]
    l = l + b.limit
  end
  return u, h, l
end
"""

RESERVE = _COMMON + r"""
local now = now_ms()
purge(now)
local demands = parse()
local used, held = state(demands)
local result = {1, -1}
for idx, d in ipairs(demands) do
  local u, h, l = balance(d, used, held)
  result[#result + 1] = u
  result[#result + 1] = h
  result[#result + 1] = l
  if result[1] == 1 and d.enforce and d.amount > math.max(l - u - h, 0) then
    result[1] = 0
    result[2] = idx - 1
  end
end
if result[1] == 0 then return result end
local hold = {}
for _, d in ipairs(demands) do draw(d, d.amount, used, held, hold) end
local parts = {}
for name, amount in pairs(hold) do
  if amount > 0 then
    redis.call('HINCRBY', rk, name, fmt(amount))
    parts[#parts + 1] = name
    parts[#parts + 1] = fmt(amount)
  end
end
if #parts > 0 then
  local lease = tonumber(ARGV[2])
  redis.call('HSET', ak, ARGV[1], table.concat(parts, '\t'))
  redis.call('ZADD', xk, fmt(now + lease), ARGV[1])
  for _, k in ipairs({rk, ak, xk}) do redis.call('PEXPIRE', k, fmt(lease + 86400000)) end
end
return result
"""

SETTLE = _COMMON + r"""
local now = now_ms()
unhold(ARGV[1])
purge(now)
local demands = parse()
local used, held = state(demands)
local add, overflow = {}, {}
for idx, d in ipairs(demands) do overflow[idx] = draw(d, d.amount, used, held, add) end
for _, d in ipairs(demands) do
  for _, b in ipairs(d.buckets) do
    local amount = add[b.name]
    if amount and amount > 0 then
      redis.call('INCRBY', b.key, fmt(amount))
      redis.call('PEXPIREAT', b.key, fmt(b.exp))
      used[b.name] = used[b.name] + amount
      add[b.name] = 0
    end
  end
end
local result = {}
for idx, d in ipairs(demands) do
  local u, h, l = balance(d, used, held)
  result[#result + 1] = u
  result[#result + 1] = h
  result[#result + 1] = l
  result[#result + 1] = overflow[idx]
end
return result
"""

# SETTLE at most once per id: the last KEYS entry is the id's mark, set (with ARGV[2], its expiry in ms) in the
# same script as the counters move; an id settled before returns an empty result and changes nothing.
SETTLE_ONCE = _COMMON + r"""
if not redis.call('SET', KEYS[#KEYS], 1, 'NX', 'PXAT', ARGV[2]) then return {} end""" + SETTLE[len(_COMMON):]


RELEASE = _COMMON + r"""
unhold(ARGV[1])
return 1
"""

BALANCES = _COMMON + r"""
purge(now_ms())
local out = {}
for i = 4, #KEYS do
  out[#out + 1] = tonumber(redis.call('GET', KEYS[i]) or '0')
  out[#out + 1] = tonumber(redis.call('HGET', rk, ARGV[i - 3]) or '0')
end
out[#out + 1] = redis.call('ZCOUNT', xk, '(' .. fmt(now_ms()), '+inf')
return out
"""
