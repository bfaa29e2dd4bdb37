-- jobs_release: ARGV[A] marker cap, then 4 per job:
-- queue index, id, token, available_at. The attempt stays counted.
local cap = tonumber(ARGV[A])
local n = 0
for b = A + 1, #ARGV, 4 do
  local q, id, at = queue(tonumber(ARGV[b])), ARGV[b + 1], ARGV[b + 3]
  local k = jkey(q, id)
  if redis.call('HGET', k, 'token') == ARGV[b + 2] then
    redis.call('HDEL', k, 'token', 'worker', 'reserved_at', 'lease_expires_at')
    redis.call('HSET', k, 'available_at', at)
    redis.call('ZREM', qkey(q, 'run'), id)
    redis.call('ZADD', qkey(q, 'wait'), at, id)
    mark(q, 1, cap, at)
    n = n + 1
  end
end
return n
