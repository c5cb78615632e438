--! requires: common
-- election.acquire: take the lease if it is free (or already ours) with a new term.
-- term = max(stored term + 1, server time in microseconds): strictly increasing, and still
-- increasing after Redis lost recent writes (a restart without AOF, a failover), as long as
-- the server clock does not step back.
-- ARGV: prefix, node id, ttl (ms), renew interval (seconds, as the node's text). Reply: the
-- new term (string), or false when held by another.
local node, ttl = ARGV[2], tonumber(ARGV[3])
local cur = redis.call('GET', P .. 'lease')
if cur then
  local holder = string.match(cur, '^(.*)|%d+$')
  if holder ~= node then
    -- A lease without an expiry (restored by DUMP/RESTORE with a TTL of 0, or SET by hand),
    -- or one longer than any node takes (LEASE_TTL_MAX, 3600 s), would never lapse: no
    -- leader for ever once its holder is gone. It gets the caller's TTL from now; a live
    -- holder goes on renewing it (each renewal sets the TTL).
    local left = redis.call('PTTL', P .. 'lease')
    if left == -1 or left > 3600000 then
      redis.call('PEXPIRE', P .. 'lease', ttl)
    end
    return false
  end
end
-- a stored term that is not a finite number ("nan" and "inf" are numbers to Lua) counts as
-- none: the term "nan" or "inf" it would give is a token no node can read; so does one from
-- 2^53 on, where a double + 1 is the same number: every term would be that one (a node that
-- lost the lease and took it again would hold its old token)
local stored = finite(redis.call('GET', P .. 'term')) or 0
if stored >= 9007199254740992 then stored = 0 end
local micros = tonumber(NOW_T[1]) * 1000000 + tonumber(NOW_T[2])
local term = string.format('%.0f', math.max(stored + 1, micros))
redis.call('SET', P .. 'term', term)
redis.call('SET', P .. 'lease', node .. '|' .. term, 'PX', ttl)
-- for the status: who holds it since when, kept after it lapses (P.."leaseinfo"); the expiry
-- it says is never before the key's own (see lease_expiry in common.lua). 'i': the holder's
-- renew interval, 'it': the term it is for - written with the lease, in this one step (a
-- node of an older version leaves both as they were: the status reads 'i' only while 'it'
-- is the record's term)
local exp = lease_expiry(ttl)
redis.call('HSET', P .. 'leaseinfo', 'h', node, 't', term, 'a', NOW_S, 'r', NOW_S, 'e', exp,
           'i', ARGV[4], 'it', term)
return term
