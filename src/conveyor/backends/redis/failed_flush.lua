-- failed_flush: ARGV[A] a failed_at bound ("" for all): delete rows failed before it.
local older = ARGV[A]
local n = 0
for qi = 1, NQ do
  local q = queue(qi)
  local failed = qkey(q, 'failed')
  local ids
  if older == '' then
    ids = redis.call('ZRANGE', failed, 0, -1)
  else
    ids = redis.call('ZRANGEBYSCORE', failed, '-inf', '(' .. older)
  end
  for _, id in ipairs(ids) do
    redis.call('DEL', fkey(q, id))
    redis.call('ZREM', failed, id)
  end
  n = n + #ids
end
return n
