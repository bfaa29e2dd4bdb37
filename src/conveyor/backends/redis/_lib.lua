-- Prepended to every conveyor script (see scripts.py). The calling convention:
--   ARGV[1]      the key prefix, e.g. "conveyor"
--   ARGV[2]      NQ, the number of queues this call covers
--   ARGV[3..]    the NQ queue names; KEYS holds each queue's "wait" key so a Cluster
--                client routes the call to the queue's slot
--   ARGV[A..]    the script's own arguments (A = 3 + NQ)
-- Every key of a queue carries the hash tag {queue}, so one call touches one slot when
-- it covers one queue. Floats arrive as Python repr() strings and are stored untouched,
-- never through Lua arithmetic, so they round-trip exactly.
local P = ARGV[1]
local NQ = tonumber(ARGV[2])
local A = 3 + NQ

local function queue(i) return ARGV[2 + i] end
local function qkey(q, suffix) return P .. ':{' .. q .. '}:' .. suffix end
local function jkey(q, id) return P .. ':{' .. q .. '}:job:' .. id end
local function fkey(q, id) return P .. ':{' .. q .. '}:failed:' .. id end
local function gkey(suffix) return P .. ':{#}:' .. suffix end

-- wake up to `count` blocked workers; the list is capped so unread markers stay few.
-- A marker holds the earliest available_at it announces, so a waiter woken for a
-- delayed job knows when to look again without asking.
local function mark(q, count, cap, at)
  if count <= 0 then return end
  local m = qkey(q, 'marker')
  local length
  for _ = 1, math.min(count, cap) do length = redis.call('LPUSH', m, at) end
  if length > cap then redis.call('LTRIM', m, 0, cap - 1) end
end

-- running job -> failed store (the caller has checked the token)
local function to_failed(q, id, exception, failed_at, connection)
  local k = jkey(q, id)
  local f = redis.call('HMGET', k, 'name', 'payload', 'attempts', 'max_tries', 'batch_id',
                       'created_at')
  redis.call('HSET', fkey(q, id), 'queue', q, 'name', f[1] or '', 'payload', f[2] or '',
             'attempts', f[3] or '0', 'max_tries', f[4] or '', 'batch_id', f[5] or '',
             'created_at', f[6] or '', 'exception', exception, 'failed_at', failed_at,
             'connection', connection)
  redis.call('ZADD', qkey(q, 'failed'), failed_at, id)
  redis.call('DEL', k)
  redis.call('ZREM', qkey(q, 'run'), id)
end
