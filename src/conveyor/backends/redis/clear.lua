-- queue_clear: delete the waiting (not running) jobs of every queue given.
local n = 0
for qi = 1, NQ do
  local q = queue(qi)
  local wait = qkey(q, 'wait')
  local ids = redis.call('ZRANGE', wait, 0, -1)
  for _, id in ipairs(ids) do redis.call('DEL', jkey(q, id)) end
  redis.call('DEL', wait)
  n = n + #ids
end
return n
