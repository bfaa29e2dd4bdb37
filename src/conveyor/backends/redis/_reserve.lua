-- reserve_jobs(a): ARGV[a] now, a+1 lease expiry, a+2 token base, a+3 worker, a+4 limit.
-- Queues are taken in the given strict order, paused ones skipped; within a queue the
-- oldest available_at first (ties by id, which is time-ordered). Returns 9 values per
-- job: queue index, id, attempts, name, payload, max_tries, available_at, created_at,
-- batch_id.
local function reserve_jobs(a)
  local now, expires, tbase, worker = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local left = tonumber(ARGV[a + 4])
  local out = {}
  for qi = 1, NQ do
    if left <= 0 then break end
    local q = queue(qi)
    if redis.call('EXISTS', qkey(q, 'paused')) == 0 then
      local wait = qkey(q, 'wait')
      local ids = redis.call('ZRANGEBYSCORE', wait, '-inf', now, 'LIMIT', 0, left)
      if #ids > 0 then
        redis.call('ZREM', wait, unpack(ids))
        local token = tbase .. '/' .. q
        local running = {}
        for _, id in ipairs(ids) do
          local k = jkey(q, id)
          local f = redis.call('HMGET', k, 'name', 'payload', 'max_tries', 'available_at',
                               'created_at', 'batch_id', 'attempts')
          if f[1] then  -- a body-less id (never written by conveyor) is dropped
            local attempts = (tonumber(f[7]) or 0) + 1
            redis.call('HSET', k, 'attempts', attempts, 'token', token, 'worker', worker,
                       'reserved_at', now, 'lease_expires_at', expires)
            running[#running + 1] = expires
            running[#running + 1] = id
            local n = #out
            out[n + 1], out[n + 2], out[n + 3] = qi, id, attempts
            out[n + 4], out[n + 5], out[n + 6] = f[1], f[2], f[3]
            out[n + 7], out[n + 8], out[n + 9] = f[4], f[5], f[6]
            left = left - 1
          end
        end
        if #running > 0 then redis.call('ZADD', qkey(q, 'run'), unpack(running)) end
      end
    end
  end
  return out
end
