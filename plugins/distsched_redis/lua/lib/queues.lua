-- distsched: a worker's report and take (prepended by scripts.py after common.lua and
-- tasks.lua): report.lua, pull.lua and report_pull.lua (the two in one round trip) share them.

-- Append the results ARGV[first..] (JSON each) of `worker` to the result list (capped at
-- `cap`) and wake the leader. With `retention` given (not ''), each success of the worker's
-- current attempt whose dispatch the leader did not sign is settled here, exactly as
-- settle.lua would (lib/tasks.lua settle_success), and leaves a summary row in P.."fin"
-- instead of a result (the leader's next settle takes the rows). Everything else - failures,
-- timeouts, stale or signed successes, anything malformed - goes to the result list as
-- without settling. The leader is woken when the result list got something, when it said
-- that ready tasks wait for room (P.."room": a freed slot may take one), when the summary
-- rows pile up (FIN_WAKE), or for an empty report; a report that only settled successes
-- otherwise wakes nobody (the leader's next pass, at most MAX_IDLE away, takes the rows).
-- Returns the result list's length (0 when nothing was appended). The caller flushes the
-- batched writes (op_reply or flush_*).
local FIN_WAKE = 1000
local function report_results(worker, cap, retention, first)
  local settle = retention ~= ''
  local pushed, fin, held = {}, {}, false
  if settle then configure_retention(retention) end
  for i = first, #ARGV do
    local entry = ARGV[i]
    local done = false
    if settle then
      local ok, r = pcall(cjson.decode, entry)
      if ok and judgeable(r) and r.worker_id == worker then
        local how, row, frees = settle_success(entry, r, true)
        if how == 'settled' then
          fin[#fin + 1] = row
          held = held or frees
          done = true
        end
      end
    end
    if not done then pushed[#pushed + 1] = entry end
  end
  local len
  if #pushed > 0 then
    len = redis.call('RPUSH', P .. 'results', unpack(pushed))
    if len > cap then
      redis.call('LTRIM', P .. 'results', -cap, -1)
    end
  end
  local wake = #pushed > 0 or #fin == 0
  if #fin > 0 then
    local flen = redis.call('RPUSH', P .. 'fin', unpack(fin))
    if flen > cap then
      redis.call('LTRIM', P .. 'fin', -cap, -1)  -- no leader for that long: the oldest rows go
    end
    wake = wake or held or flen >= FIN_WAKE or redis.call('EXISTS', P .. 'room') == 1
  end
  if wake then notify() end
  return len or 0
end

-- Take up to `max` entries of worker `w`'s own queue (first the claim list that a blocking
-- BLMOVE filled, then the queue) and mark them running (state, started_at = server time,
-- version + 1, deadline = now + timeout, or the dispatch's when later: a task dispatched
-- ahead of its not_before, which its worker holds until then, is due at not_before + timeout). Entries whose task is no longer dispatched to this
-- worker with that attempt are dropped. Returns the task rows (see task_reply), the entries
-- taken ("<id>#<n>") and the ids of records that cannot be read (a non-numeric version or
-- timeout: the caller quarantines those; the entries behind them are taken as usual).
-- A list that gave fewer entries than asked for is empty: not asked again. The caller
-- flushes the batched writes and counts.
local function take_entries(w, max)
  local queue, claim = P .. 'q:' .. w, P .. 'c:' .. w
  local out, ids, bad = {}, {}, {}
  local function take(entry)
    local id, n = string.match(entry, '^(.*)#(%d+)$')
    if not id then return end
    local key = task_key(id)
    local cur = redis.call('HMGET', key, 's', 'v', 'sa', 'u', 'w', 'n', 'da', 'fa', 'r', 'sp', 'd', 'g', 'to', 'j')
    if cur[1] ~= 'dispatched' or cur[5] ~= w or cur[6] ~= n then
      return  -- stale: re-dispatched, cancelled, finished or reassigned
    end
    local stored_v, timeout = finite(cur[2]), finite(cur[13])
    if not stored_v or not timeout then
      -- a record this script cannot read: moved aside by the caller (the row tells it why),
      -- never an error that would stop the entries behind it
      bad[#bad + 1] = id
      return
    end
    local v = stored_v + 1
    redis.call('HSET', key, 's', 'running', 'v', v, 'sa', NOW_S, 'u', NOW_S)
    -- reindex() for dispatched -> running on the same worker, by hand
    count_delta('dispatched', -1)
    count_delta('running', 1)
    batch2('ZADD GT', P .. 'dl', NOW + timeout, id)
    ids[#ids + 1] = entry
    cur[1], cur[2], cur[3], cur[4] = 'running', tostring(v), NOW_S, NOW_S
    out[#out + 1] = task_reply(id, cur)
  end
  for _, list in ipairs({claim, queue}) do
    while #out < max do
      local want = max - #out
      local entries = redis.call('LPOP', list, want)
      if not entries then break end
      for _, entry in ipairs(entries) do take(entry) end
      if #entries < want then break end
    end
  end
  return out, ids, bad
end

-- The reply cache of a take (KEYS[1]): a retried call with the same op key returns the
-- current rows of the entries taken that are still running on worker `w` with that attempt -
-- never an attempt that was re-dispatched elsewhere (or finished) while the reply was lost.
-- Returns nil when the key holds nothing.
local function take_replay(w)
  local cached = redis.call('GET', KEYS[1])
  if not cached then return nil end
  local out = {}
  for _, entry in ipairs(cjson.decode(cached)) do
    local id, n = string.match(entry, '^(.*)#(%d+)$')
    if id then
      local cur = redis.call('HMGET', task_key(id), 's', 'w', 'n')
      if cur[1] == 'running' and cur[2] == w and cur[3] == n then
        local row = task_row(id)
        if row then out[#out + 1] = row end
      end
    end
  end
  return out
end
