-- batch_cancel and batch_prune: ARGV[1] prefix, ARGV[2] "cancel" or "prune", ARGV[3] now
-- (cancel: the stamp; prune: the cutoff), ARGV[4] the batch id (cancel).
local P, what, now = ARGV[1], ARGV[2], ARGV[3]
local function bkey(id, suffix) return P .. ':{#}:batch:' .. id .. (suffix or '') end
if what == 'cancel' then
  if redis.call('EXISTS', bkey(ARGV[4])) == 0 then return 0 end
  redis.call('HSETNX', bkey(ARGV[4]), 'cancelled_at', now)
  return 1
end
local finished = P .. ':{#}:batches:finished'
local ids = redis.call('ZRANGEBYSCORE', finished, '-inf', '(' .. now)
for _, id in ipairs(ids) do
  redis.call('DEL', bkey(id), bkey(id, ':members'))
  redis.call('ZREM', P .. ':{#}:batches', id)
  redis.call('ZREM', finished, id)
end
redis.call('ZREMRANGEBYSCORE', P .. ':{#}:once', '-inf', '(' .. now)
return #ids
