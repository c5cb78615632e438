-- distsched: task records and their indexes (prepended by scripts.py after common.lua).
--
-- Task hash P.."t:"..id:  sp = spec JSON and d = the fields that change rarely, as JSON
-- (written whole by Python), and one hash field for each field the scripts read or change,
-- which is authoritative (Python does not keep it in d): s state, v version, w worker
-- ("" = none), n dispatches (the attempt number), u updated_at, sa started_at, da
-- dispatched_at, fa finished_at ("" = none for the times), r the result JSON ("" = none);
-- and to timeout, j job ("" = none), c created_at, copies the indexes need.
--
-- Indexes kept by reindex():
--   P.."cnt"           HASH state -> number of tasks, for the non-terminal states
--   P.."ready"         ZSET id -> not_before of pending and retrying tasks
--   P.."dl"            ZSET id -> deadline of dispatched and running tasks
--   P.."wa:"..worker   SET of the dispatched/running tasks of a worker (its load)
--   P.."jl:"..job      SET of the non-terminal tasks of a job
--   P.."jt:"..job      ZSET id -> created_at of every retained task of a job
--   P.."sh:"..job      ZSET id -> not_before of a serial job's held tasks: pending tasks
--                      fired while the job had its serial limit of tasks live (and not
--                      held), kept out of `ready` until it has room (task_read.lua 'ready'
--                      moves them); P.."shj" SET the jobs that have some, P.."shl" HASH
--                      job -> its serial limit
--   P.."pk:"..key      ZSET id -> until of the tasks parked under key (park.lua: no live
--                      worker may run them; out of `ready`, the task's hash fields pk and
--                      pn say so); P.."pkk" ZSET key -> the earliest until (or earlier)
--   P.."x:"..state     ZSET "<#job>:<job><id>" -> expiry (server time), one per terminal
--                      state: the retained finished tasks (counts, pruning)
-- History indexes (tasks.query: newest first by creation), all scored by created_at:
--   P.."tc"            ZSET every retained task
--   P.."ts:"..group    ZSET per state group: pending, retrying, assigned (dispatched and
--                      running: a pull changes no index), and each terminal state
--   P.."tw:"..worker   ZSET the tasks ever dispatched to a worker (pruned when read; the
--                      key expires `retention` after its last dispatch)
-- Attempts (tasks.detail): P.."ta:"..id LIST of "<worker>\31<attempt JSON>", the attempts
-- that ended in a save or a reap (the latest one is read from the task itself), the last
-- ATTEMPTS_KEPT; the key expires with the task.
local TERMINAL = {succeeded = true, failed = true, timed_out = true, cancelled = true, skipped = true}
local READY = {pending = true, retrying = true}
local ASSIGNED = {dispatched = true, running = true}
local TERMINAL_STATES = {'succeeded', 'failed', 'timed_out', 'cancelled', 'skipped'}
local SEP = '\31'
local ATTEMPTS_KEPT = 50

-- The history index group of a state.
local function ts_group(s)
  if ASSIGNED[s] then return 'assigned' end
  return s
end

local function task_key(id)
  return P .. 't:' .. id
end

local function exp_member(j, id)
  return #j .. ':' .. j .. id
end

local function split_exp_member(member)
  local len, rest = string.match(member, '^(%d+):(.*)$')
  if not len then return nil end
  len = tonumber(len)
  return string.sub(rest, 1, len), string.sub(rest, len + 1)
end

-- One field of a task string and its separator, as a pattern capture; the patterns below are
-- built by concatenation (a library's top level, run at FUNCTION LOAD, has no string library).
local FIELD = '([^' .. SEP .. ']*)' .. SEP

-- A task as sent by Python for a full write: one string, fields separated by \31, the
-- free-text fields last: s, expected version, not_before, deadline, u, sa, n, to, da, fa, sp,
-- d, r, c (created_at), a (the attempt record JSON, "" = none), #job, #worker, then
-- job .. worker .. id (lengths in bytes). JSON never holds a raw \31. One string.match takes
-- the 17 fields (half the time of finding and cutting them one by one).
local TASK_PATTERN = '^' .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD
  .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD .. '(.*)$'

local function parse_task(str)
  local s, ev, nb, dl, u, sa, n, to, da, fa, sp, d, r, c, a, jl, wl, rest = string.match(str, TASK_PATTERN)
  jl, wl = tonumber(jl), tonumber(wl)
  if not jl or not wl then error('distsched: a task string without its 17 fields') end
  return {
    s = s, ev = ev, nb = nb, dl = dl, u = u, sa = sa, n = n, to = to, da = da, fa = fa, sp = sp, d = d, r = r,
    c = c, a = a,
    j = string.sub(rest, 1, jl),
    w = string.sub(rest, jl + 1, jl + wl),
    id = string.sub(rest, jl + wl + 1),
  }
end

-- The fields of a task row, in the order Python reads them (codec.decode_task); g is the
-- leader's signature of the current dispatch ("" or absent when unsigned).
local ROW_FIELDS = {'s', 'v', 'sa', 'u', 'w', 'n', 'da', 'fa', 'r', 'sp', 'd', 'g'}

-- A task as returned to Python: an array {s, v, sa, u, w, n, da, fa, r, sp, d, g, id} (false -
-- a nil reply - for a missing field), from the first 12 values of `f` (ROW_FIELDS order, as
-- HMGET returns them). Reuses `f`.
local function task_reply(id, f)
  for k = #f, 13, -1 do f[k] = nil end
  f[13] = id
  return f
end

local function task_row(id)
  local r = redis.call('HMGET', task_key(id), unpack(ROW_FIELDS))
  if not r[1] then
    return nil
  end
  return task_reply(id, r)
end

-- Keep every index right for task t (parsed, or a table with the same fields) that moved from
-- old = {s, w, n} (nil for a new task). Count changes and set writes are batched (common.lua).
-- hold: a new serial task that waits in its job's held queue (not in `ready`).
local function reindex(key, t, old, hold)
  local id, s, w, j, c = t.id, t.s, t.w, t.j, t.c
  local os, ow = nil, nil
  if old then os, ow = old[1], old[2] end
  if os ~= s then
    if os and not TERMINAL[os] then count_delta(os, -1) end
    if not TERMINAL[s] then count_delta(s, 1) end
    if os and TERMINAL[s] and not TERMINAL[os] then note_finished(s, j, id) end
  end
  if not old then
    batch2('ZADD', P .. 'tc', c, id)
  end
  local g = ts_group(s)
  if not os or ts_group(os) ~= g then
    if os then batch1('ZREM', P .. 'ts:' .. ts_group(os), id) end
    batch2('ZADD', P .. 'ts:' .. g, c, id)
  end
  if ASSIGNED[s] and w ~= '' and not (os and ASSIGNED[os] and w == ow) then
    batch2('ZADD', P .. 'tw:' .. w, c, id)
    redis.call('EXPIRE', P .. 'tw:' .. w, RETENTION)
  end
  if hold then
    redis.call('ZADD', P .. 'sh:' .. j, t.nb, id)
  elseif READY[s] then
    batch2('ZADD', P .. 'ready', t.nb, id)
  elseif os and READY[os] then
    batch1('ZREM', P .. 'ready', id)
    if j ~= '' and string.find(t.d, '"serial_limit"', 1, true) then
      batch1('ZREM', P .. 'sh:' .. j, id)  -- held no more (cancelled...)
    end
  end
  if ASSIGNED[s] and t.dl ~= '' then
    batch2('ZADD', P .. 'dl', t.dl, id)
  elseif os and ASSIGNED[os] then
    batch1('ZREM', P .. 'dl', id)
  end
  local same_worker = os and ASSIGNED[os] and ASSIGNED[s] and w == ow
  if os and ASSIGNED[os] and ow and ow ~= '' and not same_worker then
    batch1('SREM', P .. 'wa:' .. ow, id)
  end
  if ASSIGNED[s] and w ~= '' and not same_worker then
    batch1('SADD', P .. 'wa:' .. w, id)
  end
  if j ~= '' then
    if not old then
      batch2('ZADD', P .. 'jt:' .. j, c, id)
    end
    local was_live = os and not TERMINAL[os]
    if TERMINAL[s] then
      if was_live then batch1('SREM', P .. 'jl:' .. j, id) end
    elseif not was_live then
      batch1('SADD', P .. 'jl:' .. j, id)
    end
  end
  if TERMINAL[s] then
    -- retention: the record expires; its index entries are pruned by prune_expired()
    redis.call('EXPIRE', key, RETENTION)
    if os and TERMINAL[os] and os ~= s then
      batch1('ZREM', P .. 'x:' .. os, exp_member(j, id))
    end
    batch2('ZADD', P .. 'x:' .. s, NOW + RETENTION, exp_member(j, id))
  elseif os and TERMINAL[os] then
    redis.call('PERSIST', key)
    batch1('ZREM', P .. 'x:' .. os, exp_member(j, id))
  end
end

-- Write parsed task t with version v; old = {s, w, n} or nil; hold: see reindex.
local function write_task(t, v, old, hold)
  local key = task_key(t.id)
  redis.call('HSET', key, 'sp', t.sp, 'd', t.d, 's', t.s, 'v', v, 'w', t.w, 'n', t.n, 'u', t.u,
             'sa', t.sa, 'da', t.da, 'fa', t.fa, 'r', t.r, 'to', t.to, 'j', t.j, 'c', t.c)
  reindex(key, t, old, hold)
  -- an attempt ended (out of dispatched/running): record it, with the worker it was on
  if old and ASSIGNED[old[1]] and not ASSIGNED[t.s] and t.a ~= '' then
    local ta = P .. 'ta:' .. t.id
    redis.call('RPUSH', ta, (old[2] or '') .. SEP .. t.a)
    redis.call('LTRIM', ta, -ATTEMPTS_KEPT, -1)
    redis.call('EXPIRE', ta, TERMINAL[t.s] and RETENTION or 2 * RETENTION)
  end
end

-- Create the task in string `str` (version 1) unless its id exists. True when created.
local function create_task(str)
  local t = parse_task(str)
  local key = task_key(t.id)
  if redis.call('EXISTS', key) == 1 then
    return false
  end
  write_task(t, 1, nil)
  return true
end

-- Optimistic write of the task in `str`: only when the stored version is the expected one;
-- the stored version becomes expected + 1. Returns the parsed task when written, else nil.
-- A parked task (park.lua: field pk) leaves its parked set; reindex() puts it in `ready`
-- again when it is still pending or retrying.
local function cas_task(str)
  local t = parse_task(str)
  local cur = redis.call('HMGET', task_key(t.id), 'v', 's', 'w', 'n', 'pk')
  if not cur[1] or tonumber(cur[1]) ~= tonumber(t.ev) then
    return nil
  end
  if cur[5] then
    redis.call('ZREM', P .. 'pk:' .. cur[5], t.id)
    redis.call('HDEL', task_key(t.id), 'pk', 'pn')
  end
  write_task(t, tonumber(cur[1]) + 1, {cur[2], cur[3], cur[4]})
  return t
end

-- CAS-write the tasks ARGV[first..]; returns a string of '1'/'0' (one per task) and the
-- parsed tasks written.
local function cas_tasks(first)
  local bits, written = {}, {}
  for i = first, #ARGV do
    local t = cas_task(ARGV[i])
    if t then
      bits[#bits + 1] = '1'
      written[#written + 1] = t
    else
      bits[#bits + 1] = '0'
    end
  end
  return table.concat(bits), written
end

-- Move the oldest held tasks of each serial job that has room (fewer than its limit of tasks
-- live and not held) to `ready`. O(jobs with held tasks + tasks moved); an entry whose task
-- is no longer pending is dropped.
local function release_held()
  local jobs = redis.call('SMEMBERS', P .. 'shj')
  for _, j in ipairs(jobs) do
    local sh = P .. 'sh:' .. j
    local limit = tonumber(redis.call('HGET', P .. 'shl', j)) or 1
    local live = redis.call('SCARD', P .. 'jl:' .. j)
    local held = redis.call('ZCARD', sh)
    while held > 0 and live - held < limit do
      local first = redis.call('ZRANGE', sh, 0, 0, 'WITHSCORES')
      redis.call('ZREM', sh, first[1])
      held = held - 1
      if redis.call('HGET', task_key(first[1]), 's') == 'pending' then
        redis.call('ZADD', P .. 'ready', first[2], first[1])
      end
    end
    if held == 0 then
      redis.call('SREM', P .. 'shj', j)
      redis.call('HDEL', P .. 'shl', j)
    end
  end
end

-- Drop the index entries of terminal tasks whose retention ended (their records expired);
-- at most `limit` per state and call.
local function prune_expired(limit)
  for _, s in ipairs(TERMINAL_STATES) do
    local x = P .. 'x:' .. s
    local gone = redis.call('ZRANGEBYSCORE', x, '-inf', NOW, 'LIMIT', 0, math.floor(limit))
    for _, member in ipairs(gone) do
      local j, id = split_exp_member(member)
      local ttl = j and redis.call('PTTL', task_key(id)) or -2
      if ttl == -2 then
        -- the record is gone: so are its index entries
        if j and j ~= '' then redis.call('ZREM', P .. 'jt:' .. j, id) end
        if j then
          redis.call('ZREM', P .. 'tc', id)
          redis.call('ZREM', P .. 'ts:' .. s, id)
        end
        redis.call('ZREM', x, member)
      elseif ttl == -1 then
        redis.call('ZREM', x, member)  -- the id lives again (not expiring): this entry is stale
      end
      -- else the record expires within moments (its key's clock runs a little behind this
      -- score): a later prune takes it, with its index entries
    end
  end
end

-- Settling a success in the store (settle.lua: the leader's fast path; report.lua: a
-- worker's report of its own successes, when it asks for it).
-- The fields a result may have (model.result.TaskResult).
local RESULT_FIELDS = {task_id = true, attempt_id = true, outcome = true, started_at = true, finished_at = true,
                       worker_id = true, value = true, error = true, error_type = true, retryable = true,
                       retry_after = true, meta = true, signature = true, log = true}

-- A success this script can judge: the required fields typed right, nothing unknown.
local function judgeable(r)
  if type(r) ~= 'table' or r.outcome ~= 'succeeded' or type(r.task_id) ~= 'string'
      or type(r.attempt_id) ~= 'string' or type(r.started_at) ~= 'number'
      or type(r.finished_at) ~= 'number' then
    return false
  end
  for k, _ in pairs(r) do
    if not RESULT_FIELDS[k] then return false end
  end
  return true
end

-- `d` (a task's rarely changed fields: compact JSON written by Python, codec.task_args)
-- without its "reason" member, or nil when it has none. Task.finish clears the reason (that
-- of a requeue: "worker ... lost"), which a finished attempt's task no longer shows; the
-- requeued attempt's history keeps it. Python writes a string member only (None is left out),
-- as `,"reason":"` or `{"reason":"`: inside a JSON string every quote is escaped, so that
-- text is the member itself, and its value ends at the first quote that is not escaped. A
-- value of another type (written by something else) is left as it is: the read quarantines it.
local function without_reason(d)
  local at, key_end = string.find(d, '"reason":"', 1, true)
  if not at then return nil end
  local before = string.sub(d, at - 1, at - 1)
  if before ~= ',' and before ~= '{' then return nil end
  local i = key_end + 1
  while true do
    local q = string.find(d, '["\\]', i)
    if not q then return nil end  -- no end of the string: not JSON Python wrote
    if string.sub(d, q, q) == '"' then
      i = q
      break
    end
    i = q + 2  -- an escape: skip the character it escapes
  end
  if before == ',' then
    return string.sub(d, 1, at - 2) .. string.sub(d, i + 1)
  end
  -- the first member: drop the comma after it, if another member follows
  local after = string.sub(d, i + 1, i + 1) == ',' and i + 2 or i + 1
  return string.sub(d, 1, at - 1) .. string.sub(d, after)
end

-- Apply judgeable success r (its JSON text `entry`) exactly as Task.finish would, when it is
-- the task's current attempt (attempt id "<id>#<n>" with n the stored dispatches, the task
-- dispatched or running, on the worker that reported it): the task becomes `succeeded`
-- (result, finished_at = server time, started_at if unset, no reason: without_reason), with
-- every index, the minute's throughput and the job's last outcome. Returns 'settled' and the
-- summary row "job\31attempt\31started_at\31finished_at\31settled at\31id"; 'stale' (a
-- superseded attempt, a task that is gone, another worker's claim); 'unreadable' (a record
-- this script cannot read); or, with unsigned_only, 'signed' for a task whose dispatch the
-- leader signed (the leader checks the result's signature itself).
local function settle_success(entry, r, unsigned_only)
  local id = r.task_id
  local key = task_key(id)
  local cur = redis.call('HMGET', key, 's', 'w', 'n', 'sa', 'j', 'v', 'd', 'c', 'u', 'g')
  local rw = r.worker_id
  -- the version, and the created_at (else updated_at) that scores the history index: a
  -- ZADD of a score that is not a number would fail the script half-way, after the task's
  -- write and before its counts and indexes (the leader's own path writes the record whole);
  -- finite(): "nan" is a number to Lua and not a score to Redis
  local stored_v = finite(cur[6])
  if cur[1] and (not stored_v or not finite(cur[8] or cur[9])) then
    return 'unreadable'
  end
  if not cur[1] or not ASSIGNED[cur[1]] or r.attempt_id ~= id .. '#' .. cur[3]
      or (type(rw) == 'string' and cur[2] ~= '' and rw ~= cur[2]) then
    return 'stale'
  end
  if unsigned_only and cur[10] and cur[10] ~= '' then
    return 'signed'
  end
  local sa = cur[4]
  if not sa or sa == '' then sa = string.format('%.17g', r.started_at) end
  redis.call('HSET', key, 's', 'succeeded', 'v', stored_v + 1, 'u', NOW_S, 'fa', NOW_S,
             'sa', sa, 'r', entry)
  local d = cur[7] and without_reason(cur[7])
  if d then redis.call('HSET', key, 'd', d) end
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
  -- a serial job's held task may go now: the leader is to be woken (report_results)
  local held = j ~= '' and redis.call('EXISTS', P .. 'sh:' .. j) == 1
  -- d is compact JSON written by Python: '"attempt":' occurs once, as its top-level key
  -- (a quote inside a string value is escaped)
  local attempt = string.match(cur[7] or '', '"attempt":(%d+)') or '1'
  return 'settled', table.concat({j, attempt, string.format('%.17g', r.started_at),
                                  string.format('%.17g', r.finished_at), NOW_S, id}, SEP), held
end
