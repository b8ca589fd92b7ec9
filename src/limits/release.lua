-- Releases an admission whose reply the gateway stopped waiting for (Redis answered after
-- `redis.timeout_ms`): the admit script may have run, or may still run, and nobody will settle
-- it. Marks the request id cancelled, so a late admit takes nothing, and gives back what an
-- earlier one took: its concurrency slots and budget reservations. Token buckets are left as
-- they are (whether a request was taken from them is unknown; leaving it is the safe side).
--
-- KEYS[1] the cancel marker, then one key per concurrency set, then per budget its hash and
-- its leases.
-- ARGV[1] request id, ARGV[2] marker ttl ms (the lease: a later admit's slots would lapse by
-- then anyway), ARGV[3] number of concurrency sets, ARGV[4] number of budgets.

local id = ARGV[1]
redis.call('SET', KEYS[1], 1, 'PX', tonumber(ARGV[2]))
local k = 2
for _ = 1, tonumber(ARGV[3]) do
  redis.call('ZREM', KEYS[k], id); k = k + 1
end
for _ = 1, tonumber(ARGV[4]) do
  local held, leases = KEYS[k], KEYS[k + 1]; k = k + 2
  local amount = tonumber(redis.call('HGET', held, 'r:' .. id))
  if amount then
    redis.call('HINCRBY', held, 'reserved', -amount)
    redis.call('HDEL', held, 'r:' .. id)
  end
  redis.call('ZREM', leases, id)
end
return 1
