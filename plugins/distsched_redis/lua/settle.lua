--! requires: common tasks
--! clock: lazy
-- results.settle (fenced): the leader's fast path for successes. Walks the oldest results
-- and, for as long as each one is a success it can judge here, applies it exactly as
-- Task.finish would: a success of the current attempt (attempt id "<id>#<n>" with n the
-- stored dispatches, the task dispatched or running, on the worker that reported it) makes
-- the task `succeeded` (result, finished_at = server time, started_at if unset); a success
-- of a superseded attempt, or of a task that no longer exists, is dropped as stale. It stops
-- at the first result it cannot judge - a failure or timeout (the retry policy is the
-- leader's, in Python), or anything malformed - and leaves it, and all after it, for
-- results.peek. The results it walked are removed in the same step. The attempt needs no
-- record of its own (tasks.detail reads the latest attempt from the task), but the history
-- index, the minute's throughput and the job's last outcome are written here too.
-- Successes a worker's report already settled (report.lua with settling asked for) left a
-- summary row each in P.."fin": they are taken first, counted as settled and returned like
-- the others, so the leader sees every outcome.
-- ARGV: prefix, fence token, retention, max, want rows ('1': reply with a summary of each).
-- Reply: {'OK', settled, stale, results left, summary...} or {'FENCED', current lease}; with
-- want rows, one summary per settled task, in the order settled:
-- "job\31attempt\31started_at\31finished_at\31settled at\31id".
local replay = op_replay()
if replay then return replay end
if not fence_ok(ARGV[2]) then return fenced_reply() end
configure_retention(ARGV[3])
local max, want = tonumber(ARGV[4]), ARGV[5] == '1'
local settled, stale, walked, rows = 0, 0, 0, {}
local fin = redis.call('LRANGE', P .. 'fin', 0, max - 1)
if #fin > 0 then
  redis.call('LTRIM', P .. 'fin', #fin, -1)
  settled = #fin
  if want then rows = fin end
  max = max - #fin
end
local list = P .. 'results'
local entries = max > 0 and redis.call('LRANGE', list, 0, max - 1) or {}
if #entries == 0 and settled == 0 then
  -- nothing done: no reply cache (a retry finds nothing, or reports what it does itself)
  return {'OK', 0, 0, 0}
end
if #entries > 0 then read_clock() end  -- settling writes server time

for _, entry in ipairs(entries) do
  local ok, r = pcall(cjson.decode, entry)
  if not ok or not judgeable(r) then break end
  local how, row = settle_success(entry, r, false)
  if how == 'unreadable' then
    break  -- a record this script cannot read: left for the leader's own path (peek)
  end
  walked = walked + 1
  if how == 'stale' then
    stale = stale + 1
  else
    settled = settled + 1
    if want then rows[#rows + 1] = row end
  end
end
if walked > 0 then
  redis.call('LTRIM', list, walked, -1)
end
-- The reply cache keeps the rows too: a call replayed after a lost reply returns them, so the
-- leader still emits the TaskFinished events of that batch.
local reply = {'OK', settled, stale, redis.call('LLEN', list)}
for _, row in ipairs(rows) do reply[#reply + 1] = row end
return op_reply(reply)
