--! requires: common
-- election.release: give the lease up only if the caller's token still holds it.
-- ARGV: prefix, token. Reply: 1 released, 0 not ours.
if not fence_ok(ARGV[2]) then
  return 0
end
redis.call('DEL', P .. 'lease')
redis.call('HSET', P .. 'leaseinfo', 'e', NOW_S)
return 1
