-- jobs_reserve: ARGV[A..A+4] as reserve_jobs in _reserve.lua describes.
return reserve_jobs(A)
