-- Put in front of insert.lua's body (see batches.py): a batch-aware jobs_insert. It takes
-- its own arguments from the END of ARGV (mode last, then their count, then them) and
-- removes them, so insert.lua then sees exactly its usual arguments. Modes:
--   once   key, now            insert only if `key` was never used (jobs_insert_once)
--   create id, name, options, created_at, total, first   a batch, its members and jobs
--   add    id                  jobs not yet members of batch `id` (others are dropped)
-- Every check runs before anything is written, so a refused call changes nothing.
local mode = table.remove(ARGV)
local nx = tonumber(table.remove(ARGV))
local x = {}
for i = nx, 1, -1 do x[i] = table.remove(ARGV) end
local first = A + 3 -- insert.lua's jobs: 8 arguments each, the id second
local function bkey(id, suffix) return gkey('batch:' .. id .. (suffix or '')) end

local function check_jobs()
  local seen = {}
  for b = first, #ARGV, 8 do
    local id = ARGV[b + 1]
    if seen[id] then return 'DUPLICATE job id ' .. id .. ' appears twice' end
    seen[id] = true
    local nonce = redis.call('HGET', jkey(queue(tonumber(ARGV[b])), id), 'nonce')
    if nonce and nonce ~= ARGV[A] then return 'DUPLICATE job id ' .. id .. ' already exists' end
  end
end

if mode == 'once' then
  if redis.call('ZADD', gkey('once'), 'NX', x[2], x[1]) == 0 then return -1 end
elseif mode == 'create' then
  local id = x[1]
  if x[6] == '1' and redis.call('EXISTS', bkey(id)) == 1 then
    return redis.error_reply('DUPLICATE batch id ' .. id .. ' already exists')
  end
  local err = check_jobs()
  if err then return redis.error_reply(err) end
  for b = first, #ARGV, 8 do
    if redis.call('HEXISTS', bkey(id, ':members'), ARGV[b + 1]) == 1 then
      return redis.error_reply('DUPLICATE job id ' .. ARGV[b + 1] .. ' appears twice')
    end
  end
  if x[6] == '1' then -- the first call writes the row, with the count of every chunk
    redis.call('HSET', bkey(id), 'name', x[2], 'options', x[3], 'created_at', x[4],
               'total', x[5], 'pending', x[5], 'failed', 0, 'failed_ids', '[]')
    redis.call('ZADD', gkey('batches'), x[4], id)
  end
  for b = first, #ARGV, 8 do redis.call('HSET', bkey(id, ':members'), ARGV[b + 1], '') end
elseif mode == 'add' then
  local id = x[1]
  if redis.call('EXISTS', bkey(id)) == 0 then
    return redis.error_reply('NOTFOUND no batch with id ' .. id)
  end
  local kept = {}
  for b = first, #ARGV, 8 do
    if redis.call('HEXISTS', bkey(id, ':members'), ARGV[b + 1]) == 0 then
      for j = 0, 7 do kept[#kept + 1] = ARGV[b + j] end
    end
  end
  for i = #ARGV, first, -1 do ARGV[i] = nil end
  for i, v in ipairs(kept) do ARGV[first + i - 1] = v end
  local err = check_jobs()
  if err then return redis.error_reply(err) end
  for b = first, #ARGV, 8 do redis.call('HSET', bkey(id, ':members'), ARGV[b + 1], '') end
  redis.call('HINCRBY', bkey(id), 'total', #kept / 8)
  redis.call('HINCRBY', bkey(id), 'pending', #kept / 8)
end
