-- jobs_complete: 3 per lease from ARGV[A]: queue index, id, token.
return complete_leases(A, #ARGV)
