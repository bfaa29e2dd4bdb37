-- complete_leases(first, last): ARGV[first..last] holds 3 per lease: queue index, id,
-- token. A lease whose token still matches is done: its job is deleted. Returns how many.
local function complete_leases(first, last)
  local n = 0
  for b = first, last, 3 do
    local q, id = queue(tonumber(ARGV[b])), ARGV[b + 1]
    local k = jkey(q, id)
    if redis.call('HGET', k, 'token') == ARGV[b + 2] then
      redis.call('DEL', k)
      redis.call('ZREM', qkey(q, 'run'), id)
      n = n + 1
    end
  end
  return n
end
