--! requires: common
-- election.renew: extend the lease only if the caller's token still holds it.
-- ARGV: prefix, token "<node>|<term>", ttl (ms), renew interval (seconds, as the node's
-- text). Reply: 1 renewed, 0 not ours.
if not fence_ok(ARGV[2]) then
  return 0
end
redis.call('PEXPIRE', P .. 'lease', tonumber(ARGV[3]))
-- the status record (P.."leaseinfo") is written whole: one broken by something other than
-- distsched (a term that is not a number, a field gone) is right again within a renewal;
-- the acquisition time is kept unless it is not a finite number (then: from now on), and the
-- holder's renew interval is written again with its term ('i', 'it': see lease_acquire.lua)
local node, term = string.match(ARGV[2], '^(.*)|(%d+)$')
local acquired = redis.call('HGET', P .. 'leaseinfo', 'a')
if not (acquired and finite(acquired)) then acquired = NOW_S end
redis.call('HSET', P .. 'leaseinfo', 'h', node, 't', term, 'a', acquired, 'r', NOW_S,
           'e', lease_expiry(tonumber(ARGV[3])), 'i', ARGV[4], 'it', term)
return 1
