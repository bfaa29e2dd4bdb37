-- jobs_extend_lease: ARGV[A] new expiry, then 3 per lease: queue index, id, token.
-- Returns the ids whose token still matched.
local expires = ARGV[A]
local held = {}
for b = A + 1, #ARGV, 3 do
  local q, id = queue(tonumber(ARGV[b])), ARGV[b + 1]
  local k = jkey(q, id)
  if redis.call('HGET', k, 'token') == ARGV[b + 2] then
    redis.call('HSET', k, 'lease_expires_at', expires)
    redis.call('ZADD', qkey(q, 'run'), 'XX', expires, id)
    held[#held + 1] = id
  end
end
return held
