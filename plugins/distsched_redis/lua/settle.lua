--! requires: common tasks
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
-- ARGV: prefix, fence token, retention, max, want rows ('1': reply with a summary of each).
-- Reply: {'OK', settled, stale, results left, summary...} or {'FENCED', current lease}; with
-- want rows, one summary per settled task, in the order settled:
-- "job\31attempt\31started_at\31finished_at\31settled at\31id".
local replay = op_replay()
if replay then return replay end
if not fence_ok(ARGV[2]) then return fenced_reply() end
configure_retention(ARGV[3])
local max, want = tonumber(ARGV[4]), ARGV[5] == '1'
local list = P .. 'results'
local entries = redis.call('LRANGE', list, 0, max - 1)
if #entries == 0 then
  return op_reply({'OK', 0, 0, 0})
end

-- The fields a result may have (model.result.TaskResult).
local FIELDS = {task_id = true, attempt_id = true, outcome = true, started_at = true, finished_at = true,
                worker_id = true, value = true, error = true, error_type = true, retryable = true,
                retry_after = true, meta = true, signature = true}

-- A success this script can judge: the required fields typed right, nothing unknown.
local function judgeable(r)
  if type(r) ~= 'table' or r.outcome ~= 'succeeded' or type(r.task_id) ~= 'string'
      or type(r.attempt_id) ~= 'string' or type(r.started_at) ~= 'number'
      or type(r.finished_at) ~= 'number' then
    return false
  end
  for k, _ in pairs(r) do
    if not FIELDS[k] then return false end
  end
  return true
end

local settled, stale, walked, rows = 0, 0, 0, {}
for _, entry in ipairs(entries) do
  local ok, r = pcall(cjson.decode, entry)
  if not ok or not judgeable(r) then break end
  walked = walked + 1
  local id = r.task_id
  local key = task_key(id)
  local cur = redis.call('HMGET', key, 's', 'w', 'n', 'sa', 'j', 'v', 'd', 'c', 'u')
  local rw = r.worker_id
  if cur[1] and not tonumber(cur[6]) then
    walked = walked - 1
    break  -- a record this script cannot read: left for the leader's own path (peek)
  end
  if not cur[1] or not ASSIGNED[cur[1]] or r.attempt_id ~= id .. '#' .. cur[3]
      or (type(rw) == 'string' and cur[2] ~= '' and rw ~= cur[2]) then
    stale = stale + 1
  else
    local sa = cur[4]
    if not sa or sa == '' then sa = string.format('%.17g', r.started_at) end
    redis.call('HSET', key, 's', 'succeeded', 'v', tonumber(cur[6]) + 1, 'u', NOW_S, 'fa', NOW_S,
               'sa', sa, 'r', entry)
    -- reindex() for dispatched/running -> succeeded, by hand
    local w, j = cur[2] or '', cur[5] or ''
    count_delta(cur[1], -1)
    batch1('ZREM', P .. 'dl', id)
    if w ~= '' then batch1('SREM', P .. 'wa:' .. w, id) end
    if j ~= '' then batch1('SREM', P .. 'jl:' .. j, id) end
    redis.call('EXPIRE', key, RETENTION)
    batch2('ZADD', P .. 'x:succeeded', NOW + RETENTION, exp_member(j, id))
    batch1('ZREM', P .. 'ts:assigned', id)
    batch2('ZADD', P .. 'ts:succeeded', cur[8] or cur[9], id)
    note_finished('succeeded', j, id)
    settled = settled + 1
    if want then
      -- d is compact JSON written by Python: '"attempt":' occurs once, as its top-level key
      -- (a quote inside a string value is escaped)
      local attempt = string.match(cur[7] or '', '"attempt":(%d+)') or '1'
      rows[#rows + 1] = table.concat({cur[5] or '', attempt, string.format('%.17g', r.started_at),
                                      string.format('%.17g', r.finished_at), NOW_S, id}, SEP)
    end
  end
end
if walked > 0 then
  redis.call('LTRIM', list, walked, -1)
end
-- The reply cache keeps the counts only (a replayed call returns no rows: the leader then
-- misses the events of that batch, never a state change).
local reply = op_reply({'OK', settled, stale, redis.call('LLEN', list)})
for _, row in ipairs(rows) do reply[#reply + 1] = row end
return reply
