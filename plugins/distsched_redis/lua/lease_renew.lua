--! requires: common
-- election.renew: extend the lease only if the caller's token still holds it.
-- ARGV: prefix, token "<node>|<term>", ttl (ms). Reply: 1 renewed, 0 not ours.
if not fence_ok(ARGV[2]) then
  return 0
end
redis.call('PEXPIRE', P .. 'lease', tonumber(ARGV[3]))
redis.call('HSET', P .. 'leaseinfo', 'r', NOW_S, 'e', lease_expiry(tonumber(ARGV[3])))
return 1
