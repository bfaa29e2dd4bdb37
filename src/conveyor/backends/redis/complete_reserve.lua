-- jobs_ack_and_reserve's usual round: ARGV[A] the number of leases L, then 3 per lease
-- (as complete.lua), then reserve.lua's arguments. Returns what reserve.lua returns.
local last = A + 3 * tonumber(ARGV[A])
complete_leases(A + 1, last)
return reserve_jobs(last + 1)
