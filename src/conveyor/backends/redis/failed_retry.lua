-- failed_retry: ARGV[A] now, A+1 marker cap, A+2 "all" or "ids", then the ids.
-- Failed rows become new jobs (attempts 0) and the rows are deleted, atomically.
local now, cap, mode = ARGV[A], tonumber(ARGV[A + 1]), ARGV[A + 2]
local out = {}
for qi = 1, NQ do
  local q = queue(qi)
  local failed = qkey(q, 'failed')
  local ids
  if mode == 'all' then
    ids = redis.call('ZRANGE', failed, 0, -1)
  else
    ids = {}
    for b = A + 3, #ARGV do
      if redis.call('ZSCORE', failed, ARGV[b]) then ids[#ids + 1] = ARGV[b] end
    end
  end
  for _, id in ipairs(ids) do
    local f = redis.call('HMGET', fkey(q, id), 'name', 'payload', 'max_tries', 'batch_id')
    local k = jkey(q, id)
    redis.call('DEL', k)
    redis.call('HSET', k, 'name', f[1] or '', 'payload', f[2] or '', 'attempts', 0,
               'max_tries', f[3] or '', 'available_at', now, 'created_at', now,
               'batch_id', f[4] or '', 'nonce', '')
    redis.call('ZADD', qkey(q, 'wait'), now, id)
    redis.call('DEL', fkey(q, id))
    redis.call('ZREM', failed, id)
    out[#out + 1] = id
  end
  mark(q, #ids, cap, now)
end
return out
