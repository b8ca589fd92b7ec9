-- Settles an admitted request (the gateway's Redis limits backend): corrects its token
-- reservation by what it used, frees its concurrency slot, replaces its budget reservation by
-- its actual cost. Safe to run twice: a slot or reservation already gone is skipped.
--
-- ARGV[1] request id, ARGV[2] number of checks, then per check:
--   "b" tokens bucket: KEYS: hash;  ARGV: capacity/min, debit (used - reserved; may be < 0)
--   "c" concurrency:   KEYS: sorted set
--   "m" budget:        KEYS: hash and leases of the period reserved in, hash of the period now;
--                      ARGV: actual cost (micro-USD), ttl s of the hash of the period now

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local n = tonumber(ARGV[2])
local window = 60000

local a, k = 3, 1
for i = 1, n do
  local kind = ARGV[a]
  if kind == 'b' then
    local key = KEYS[k]; k = k + 1
    local cap = tonumber(ARGV[a + 1]); local debit = tonumber(ARGV[a + 2]); a = a + 3
    local h = redis.call('HMGET', key, 'l', 'a')
    local level = cap
    if h[1] then
      local elapsed = math.max(0, now - tonumber(h[2]))
      level = math.min(cap, tonumber(h[1]) + elapsed * cap / window)
    end
    level = math.min(cap, level - debit)
    redis.call('HSET', key, 'l', level, 'a', now)
    redis.call('PEXPIRE', key, math.ceil((cap - level) * window / cap) + 1000)
  elseif kind == 'c' then
    redis.call('ZREM', KEYS[k], id); k = k + 1
    a = a + 1
  elseif kind == 'm' then
    local held, leases, spent_in = KEYS[k], KEYS[k + 1], KEYS[k + 2]; k = k + 3
    local cost = tonumber(ARGV[a + 1]); local ttl = tonumber(ARGV[a + 2]); a = a + 3
    local amount = tonumber(redis.call('HGET', held, 'r:' .. id))
    if amount then
      redis.call('HINCRBY', held, 'reserved', -amount)
      redis.call('HDEL', held, 'r:' .. id)
    end
    redis.call('ZREM', leases, id)
    if cost > 0 then
      redis.call('HINCRBY', spent_in, 'spent', cost)
      redis.call('EXPIRE', spent_in, ttl)
    end
  else
    return redis.error_reply('unknown check kind ' .. tostring(kind))
  end
end
return 1
