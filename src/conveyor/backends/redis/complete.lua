-- jobs_complete: 3 per lease: queue index, id, token. Done jobs are deleted.
local n = 0
for b = A, #ARGV, 3 do
  local q, id = queue(tonumber(ARGV[b])), ARGV[b + 1]
  local k = jkey(q, id)
  if redis.call('HGET', k, 'token') == ARGV[b + 2] then
    redis.call('DEL', k)
    redis.call('ZREM', qkey(q, 'run'), id)
    n = n + 1
  end
end
return n
