-- jobs_insert: ARGV[A] nonce, A+1 marker cap, A+2 "1" to add the queues to the store's
-- queue set here (one server; under single_slot the client does it), then 8 per job:
-- queue index, id, available_at, name, payload, created_at, max_tries, batch_id.
-- All or nothing: every id is checked before anything is written. A job already stored by
-- this same call (same nonce: a retry after a lost reply) is not a duplicate.
local nonce, cap = ARGV[A], tonumber(ARGV[A + 1])
local first = A + 3
local stored = {}  -- ids this same call already wrote: left exactly as they are now
for b = first, #ARGV, 8 do
  local seen = redis.call('HGET', jkey(queue(tonumber(ARGV[b])), ARGV[b + 1]), 'nonce')
  if seen and seen ~= nonce then
    return redis.error_reply('DUPLICATE job id ' .. ARGV[b + 1] .. ' already exists')
  end
  if seen then stored[ARGV[b + 1]] = true end
end
local scores, earliest = {}, {}
for b = first, #ARGV, 8 do
  local qi = tonumber(ARGV[b])
  local q, id, at = queue(qi), ARGV[b + 1], ARGV[b + 2]
  if not stored[id] then
    redis.call('HSET', jkey(q, id), 'name', ARGV[b + 3], 'payload', ARGV[b + 4],
               'attempts', 0, 'max_tries', ARGV[b + 6], 'available_at', at,
               'created_at', ARGV[b + 5], 'batch_id', ARGV[b + 7], 'nonce', nonce)
    local z = scores[qi]
    if not z then z = {}; scores[qi] = z; earliest[qi] = at end
    if tonumber(at) < tonumber(earliest[qi]) then earliest[qi] = at end
    z[#z + 1] = at
    z[#z + 1] = id
  end
end
if ARGV[A + 2] == '1' then
  for qi = 1, NQ do redis.call('SADD', gkey('queues'), queue(qi)) end
end
for qi, z in pairs(scores) do
  redis.call('ZADD', qkey(queue(qi), 'wait'), unpack(z))
  -- even for a delayed job: the store has no clock of its own, and a spurious wake-up
  -- costs one empty reserve
  mark(queue(qi), #z / 2, cap, earliest[qi])
end
return (#ARGV - first + 1) / 8
