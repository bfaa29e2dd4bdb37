-- jobs_recover_expired: ARGV[A] now, A+1 default tries, A+2 limit, A+3 connection,
-- A+4 marker cap. Leases that ended before now: back to wait (the attempt stays counted)
-- or, once attempts >= tries, to the failed store as "worker lost".
-- Returns {released ids, failed ids}.
local now, default_tries = ARGV[A], tonumber(ARGV[A + 1])
local left, connection, cap = tonumber(ARGV[A + 2]), ARGV[A + 3], tonumber(ARGV[A + 4])
local released, failed = {}, {}
for qi = 1, NQ do
  if left <= 0 then break end
  local q = queue(qi)
  local run = qkey(q, 'run')
  local ids = redis.call('ZRANGEBYSCORE', run, '-inf', '(' .. now, 'LIMIT', 0, left)
  local back = 0
  for _, id in ipairs(ids) do
    local k = jkey(q, id)
    local f = redis.call('HMGET', k, 'attempts', 'max_tries', 'worker', 'lease_expires_at')
    if not f[1] then
      redis.call('ZREM', run, id)
    else
      local attempts = tonumber(f[1])
      local tries = tonumber(f[2]) or default_tries
      if attempts >= tries then
        local reason = string.format(
          'conveyor.errors.WorkerLost: worker lost: the lease of worker %s expired at %.3f '
          .. 'during attempt %d of %d', f[3] or '?', tonumber(f[4]) or 0, attempts, tries)
        to_failed(q, id, reason, now, connection)
        failed[#failed + 1] = id
      else
        redis.call('HDEL', k, 'token', 'worker', 'reserved_at', 'lease_expires_at')
        redis.call('HSET', k, 'available_at', now)
        redis.call('ZREM', run, id)
        redis.call('ZADD', qkey(q, 'wait'), now, id)
        released[#released + 1] = id
        back = back + 1
      end
    end
    left = left - 1
  end
  mark(q, back, cap, now)
end
return {released, failed}
