--! requires: common tasks
-- tasks.prune (the leader's housekeeping, not fenced: pruning is idempotent): drop the index
-- entries of finished tasks whose retention ended (their hashes expired), at most `limit`
-- per terminal state. Reply: the number of entries looked at (less than the budget when
-- nothing more is due).
-- ARGV: prefix, limit.
local limit = math.max(1, math.floor(tonumber(ARGV[2]) or 1000))
local seen = 0
for _, s in ipairs(TERMINAL_STATES) do
  seen = seen + redis.call('ZCOUNT', P .. 'x:' .. s, '-inf', NOW)
end
prune_expired(limit)
return seen
