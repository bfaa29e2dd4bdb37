-- jobs_fail: ARGV[A] connection (redacted URL), then 5 per job: queue index, id, token,
-- exception, failed_at.
local connection = ARGV[A]
local n = 0
for b = A + 1, #ARGV, 5 do
  local q, id = queue(tonumber(ARGV[b])), ARGV[b + 1]
  if redis.call('HGET', jkey(q, id), 'token') == ARGV[b + 2] then
    to_failed(q, id, ARGV[b + 3], ARGV[b + 4], connection)
    n = n + 1
  end
end
return n
