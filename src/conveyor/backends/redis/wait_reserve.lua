-- jobs_wait_and_reserve: sent in the same packet as a BLPOP on the queues' markers, so
-- Redis runs it the moment that wait ends (woken or timed out). The caller's clock at
-- that moment is unknown when the packet leaves, so "now" is the server's clock, bounded
-- by ARGV[A], the latest the caller allows (its clock at sending plus the wait).
-- ARGV[A+1] lease seconds, A+2 token base, A+3 worker, A+4 limit.
-- Returns {now, lease expiry, rows as reserve_jobs returns them}.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local bound = tonumber(ARGV[A])
if now > bound then now = bound end
local nows = string.format('%.6f', now)
local expires = string.format('%.6f', now + tonumber(ARGV[A + 1]))
ARGV[A], ARGV[A + 1] = nows, expires
return {nows, expires, reserve_jobs(A)}
