-- failed_forget: ARGV[A] the id. Returns 1 when a failed row was deleted.
local id = ARGV[A]
for qi = 1, NQ do
  local q = queue(qi)
  if redis.call('ZREM', qkey(q, 'failed'), id) == 1 then
    redis.call('DEL', fkey(q, id))
    return 1
  end
end
return 0
