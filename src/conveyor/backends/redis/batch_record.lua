-- batch_record: ARGV[1] prefix, ARGV[2] now, then 3 per mark: batch id, job id, outcome.
-- A member's outcome moves once: '' (none) -> any, failed -> succeeded | cancelled.
-- Returns, per batch named, its id then its hash fields (HGETALL), after the change.
local P, now = ARGV[1], ARGV[2]
local function bkey(id, suffix) return P .. ':{#}:batch:' .. id .. (suffix or '') end
local order, named = {}, {}
for b = 3, #ARGV, 3 do
  local id, job, new = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  if not named[id] then named[id] = true; order[#order + 1] = id end
  local old = redis.call('HGET', bkey(id, ':members'), job)
  local dp, df, add, remove = 0, 0, false, false
  if old == '' then
    if new == 'failed' then df, add = 1, true else dp = -1 end
  elseif old == 'failed' and new ~= 'failed' then
    dp, df, remove = -1, -1, true
  end
  if (dp ~= 0 or df ~= 0) and redis.call('EXISTS', bkey(id)) == 1 then
    redis.call('HSET', bkey(id, ':members'), job, new)
    if dp ~= 0 then redis.call('HINCRBY', bkey(id), 'pending', dp) end
    if df ~= 0 then redis.call('HINCRBY', bkey(id), 'failed', df) end
  end
  if (add or remove) and redis.call('EXISTS', bkey(id)) == 1 then
    local ids = cjson.decode(redis.call('HGET', bkey(id), 'failed_ids') or '[]')
    local out = {}
    for _, v in ipairs(ids) do if v ~= job then out[#out + 1] = v end end
    if add then out[#out + 1] = job end
    redis.call('HSET', bkey(id), 'failed_ids', #out == 0 and '[]' or cjson.encode(out))
  end
end
local result = {}
for _, id in ipairs(order) do
  local h = redis.call('HMGET', bkey(id), 'pending', 'failed', 'finished_at')
  if h[1] then
    if tonumber(h[1]) <= tonumber(h[2]) and not h[3] then
      redis.call('HSET', bkey(id), 'finished_at', now)
      redis.call('ZADD', P .. ':{#}:batches:finished', now, id)
    end
    result[#result + 1] = id
    result[#result + 1] = redis.call('HGETALL', bkey(id))
  end
end
return result
