-- metrics_prune: NQ = 0; ARGV[A] the bound: delete samples of minutes before it.
local data, minutes = gkey('metrics'), gkey('metrics:minutes')
local fields = redis.call('ZRANGEBYSCORE', minutes, '-inf', '(' .. ARGV[A])
for i = 1, #fields, 500 do
  redis.call('HDEL', data, unpack(fields, i, math.min(i + 499, #fields)))
end
redis.call('ZREMRANGEBYSCORE', minutes, '-inf', '(' .. ARGV[A])
return #fields
