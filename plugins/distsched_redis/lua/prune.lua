--! requires: common tasks
-- tasks.prune (the leader's housekeeping, not fenced: pruning is idempotent): drop the index
-- entries of finished tasks whose retention ended (their hashes expired), at most `limit`
-- per terminal state; then sweep the per-worker history indexes (tw:<worker>) of the workers
-- still known (hb), at most `limit` entries each: an entry of a task created more than
-- `retention` ago whose record is gone is dropped. A live worker's tw key never expires (each
-- dispatch renews it) and prune_expired cannot reach it (the expired record named the worker),
-- so without the sweep it grew by every task ever dispatched to the worker. The sweep resumes
-- where the last one stopped (P.."twp": worker -> score of the last entry looked at) and
-- starts over once it reached the horizon, so entries of tasks still alive do not stall it.
-- Reply: the number of entries looked at that were due (less than the budget when nothing
-- more is due).
-- ARGV: prefix, limit, retention.
local limit = math.max(1, math.floor(tonumber(ARGV[2]) or 1000))
configure_retention(ARGV[3] or RETENTION)
local seen = 0
for _, s in ipairs(TERMINAL_STATES) do
  seen = seen + redis.call('ZCOUNT', P .. 'x:' .. s, '-inf', NOW)
end
prune_expired(limit)

local cursors = P .. 'twp'
local horizon = NOW - RETENTION
local known = {}
for _, w in ipairs(redis.call('ZRANGE', P .. 'hb', 0, -1)) do
  known[w] = true
  local tw = P .. 'tw:' .. w
  local from = redis.call('HGET', cursors, w)
  if from and not finite(from) then from = nil end  -- a broken resume point: start over
  local batch = redis.call('ZRANGEBYSCORE', tw, from and ('(' .. from) or '-inf', horizon,
                           'WITHSCORES', 'LIMIT', 0, limit)
  local removed = 0
  for k = 1, #batch, 2 do
    if redis.call('EXISTS', task_key(batch[k])) == 0 then
      redis.call('ZREM', tw, batch[k])
      removed = removed + 1
    end
  end
  seen = seen + removed
  if #batch < 2 * limit then
    redis.call('HDEL', cursors, w)  -- reached the horizon: the next sweep starts over
  else
    redis.call('HSET', cursors, w, batch[#batch])
  end
end
for _, w in ipairs(redis.call('HKEYS', cursors)) do
  if not known[w] then redis.call('HDEL', cursors, w) end
end
return seen
