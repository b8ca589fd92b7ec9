-- Admits a request against all its limits at once, or takes nothing (the gateway's Redis limits
-- backend; the same arithmetic as src/limits/bucket.rs and memory.rs). Time is Redis's own, so
-- every replica agrees on it.
--
-- ARGV[1] mode: "admit" (check, then take) or "peek" (report only)
-- ARGV[2] request id (the member of concurrency and reservation sets)
-- ARGV[3] lease in ms (a dead replica's slots and reservations expire after it)
-- ARGV[4] number of checks, then per check its kind and arguments:
--   "b" bucket:      KEYS: hash {l = level, a = last refill ms};  ARGV: capacity/min, need
--   "c" concurrency: KEYS: sorted set of request ids by lease expiry; ARGV: max
--   "m" budget:      KEYS: hash {spent, reserved, r:<id> = amount}, sorted set of reservation
--                    leases;  ARGV: budget, cost (micro-USD), key ttl s, wait ms (period end)
-- The last key is the request's cancel marker (release.lua sets it when the gateway stopped
-- waiting for this reply): a marked request is only checked, as by "peek", and takes nothing.
-- Returns {admitted (1|0), refusing check (1-based, 0 none), wait ms, then two numbers per
-- check: bucket (level left, ms until full), concurrency (in flight, 0), budget (spent, reserved)}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode = ARGV[1]
local id = ARGV[2]
local lease = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local window = 60000

local checks = {}
local a, k = 5, 1
local refused, wait = 0, -1
for i = 1, n do
  local c = { kind = ARGV[a] }
  if c.kind == 'b' then
    c.key = KEYS[k]; k = k + 1
    c.cap = tonumber(ARGV[a + 1]); c.need = tonumber(ARGV[a + 2]); a = a + 3
    local h = redis.call('HMGET', c.key, 'l', 'a')
    c.level = c.cap
    if h[1] then
      local elapsed = math.max(0, now - tonumber(h[2]))
      c.level = math.min(c.cap, tonumber(h[1]) + elapsed * c.cap / window)
    end
    if c.level < c.need then
      c.wait = math.ceil((c.need - c.level) * window / c.cap)
    end
  elseif c.kind == 'c' then
    c.key = KEYS[k]; k = k + 1
    c.max = tonumber(ARGV[a + 1]); a = a + 2
    redis.call('ZREMRANGEBYSCORE', c.key, '-inf', now)
    c.count = redis.call('ZCARD', c.key)
    if c.count >= c.max then c.wait = 1000 end
  elseif c.kind == 'm' then
    c.key = KEYS[k]; c.leases = KEYS[k + 1]; k = k + 2
    c.budget = tonumber(ARGV[a + 1]); c.cost = tonumber(ARGV[a + 2])
    c.ttl = tonumber(ARGV[a + 3]); c.period_wait = tonumber(ARGV[a + 4]); a = a + 5
    -- Reservations whose replica never settled them (it died) are given back.
    local expired = redis.call('ZRANGEBYSCORE', c.leases, '-inf', now, 'LIMIT', 0, 100)
    for _, rid in ipairs(expired) do
      local amount = tonumber(redis.call('HGET', c.key, 'r:' .. rid))
      if amount then
        redis.call('HINCRBY', c.key, 'reserved', -amount)
        redis.call('HDEL', c.key, 'r:' .. rid)
      end
      redis.call('ZREM', c.leases, rid)
    end
    local h = redis.call('HMGET', c.key, 'spent', 'reserved')
    c.spent = tonumber(h[1]) or 0
    c.reserved = tonumber(h[2]) or 0
    if c.spent + c.reserved + c.cost > c.budget then c.wait = c.period_wait end
  else
    return redis.error_reply('unknown check kind ' .. tostring(c.kind))
  end
  if c.wait and c.wait > wait then refused, wait = i, c.wait end
  checks[i] = c
end

local admitted = 0
if mode == 'admit' and refused == 0 and redis.call('EXISTS', KEYS[#KEYS]) == 0 then
  admitted = 1
  for _, c in ipairs(checks) do
    if c.kind == 'b' then
      c.level = c.level - c.need
      redis.call('HSET', c.key, 'l', c.level, 'a', now)
      redis.call('PEXPIRE', c.key, math.ceil((c.cap - c.level) * window / c.cap) + 1000)
    elseif c.kind == 'c' then
      redis.call('ZADD', c.key, now + lease, id)
      redis.call('PEXPIRE', c.key, lease + 1000)
      c.count = c.count + 1
    elseif c.kind == 'm' and c.cost > 0 then
      redis.call('HINCRBY', c.key, 'reserved', c.cost)
      redis.call('HSET', c.key, 'r:' .. id, c.cost)
      redis.call('ZADD', c.leases, now + lease, id)
      redis.call('EXPIRE', c.key, c.ttl)
      redis.call('EXPIRE', c.leases, c.ttl)
      c.reserved = c.reserved + c.cost
    end
  end
end

local out = { admitted, refused, math.max(wait, 0) }
for _, c in ipairs(checks) do
  if c.kind == 'b' then
    out[#out + 1] = math.floor(c.level)
    out[#out + 1] = math.ceil(math.max(0, c.cap - c.level) * window / c.cap)
  elseif c.kind == 'c' then
    out[#out + 1] = c.count
    out[#out + 1] = 0
  else
    out[#out + 1] = c.spent
    out[#out + 1] = c.reserved
  end
end
return out
