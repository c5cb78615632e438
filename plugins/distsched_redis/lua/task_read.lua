--! requires: common tasks
-- Task reads, each one consistent snapshot. Reply: task rows (see task_reply); for 'get',
-- false (nil) in place of a missing task.
--   prefix, 'get', id...                     the tasks by id
--   prefix, 'ready', now, limit              pending/retrying with not_before <= now, oldest first
--                                            (after moving the held tasks of serial jobs
--                                            that have room to `ready`: release_held)
--   prefix, 'overdue', now, limit            dispatched/running with deadline < now, earliest first
--   prefix, 'assigned', worker, tidy         dispatched/running tasks of a worker
--   prefix, 'live', job, tidy                non-terminal tasks of a job
--   prefix, 'query', index key, state|'', job|'', worker|'', since|'', cursor score|'',
--           cursor id, limit, budget, tidy
--                                            tasks.query: walk the index (a ZSET scored by
--                                            created_at) from the newest entry below the
--                                            cursor, keep the tasks that match the filters,
--                                            until `limit` are found, `budget` entries were
--                                            examined, or an entry is older than `since`.
--                                            Reply: {next score|'', next id|'', rows...}
--                                            (next: the last entry examined, when more may
--                                            follow). Entries whose task is gone are removed
--                                            (when tidy is '1').
--   prefix, 'detail', id                     {row or false, attempt entries...}
local mode = ARGV[2]
local out = {}
-- The rows of `ids`, read from index `key`, whose task is in one of the states the index
-- holds (`wanted`; and on `worker`, when given). An entry whose task is gone, or in another
-- state the engine knows, is misfiled (a write by something other than distsched): it
-- leaves the index (`drop`, ZREM or SREM), so that no reader acts on it - the leader
-- dispatched a failed task read from `ready`, and its pass failed on it at every try. A
-- state the engine does not know is returned: the caller moves the record aside.
-- tidy: '1' but for a caller that writes nothing (a reader - a replica, a CLI listing - or
-- a writer whose server refuses writes): entries are then left where they are, and skipped.
-- (The leader's 'ready' and 'overdue' always tidy.)
local LIVE = {pending = true, retrying = true, dispatched = true, running = true}
local function add_indexed(ids, key, drop, wanted, worker, tidy)
  for _, id in ipairs(ids) do
    local row = task_row(id)
    local s = row and row[1]
    if row and not (LIVE[s] or TERMINAL[s]) then
      out[#out + 1] = row
    elseif row and wanted[s] and (not worker or row[5] == worker) then
      out[#out + 1] = row
    elseif tidy ~= '0' then
      redis.call(drop, key, id)
    end
  end
end

if mode == 'get' then
  for i = 3, #ARGV do
    out[#out + 1] = task_row(ARGV[i]) or false
  end
elseif mode == 'ready' then
  release_held()  -- a serial job's held tasks that may run now join the ready ones first
  add_indexed(redis.call('ZRANGEBYSCORE', P .. 'ready', '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4])),
              P .. 'ready', 'ZREM', READY)
elseif mode == 'overdue' then
  add_indexed(redis.call('ZRANGEBYSCORE', P .. 'dl', '-inf', '(' .. ARGV[3], 'LIMIT', 0, tonumber(ARGV[4])),
              P .. 'dl', 'ZREM', ASSIGNED)
elseif mode == 'assigned' then
  add_indexed(redis.call('SMEMBERS', P .. 'wa:' .. ARGV[3]), P .. 'wa:' .. ARGV[3], 'SREM', ASSIGNED, ARGV[3],
              ARGV[4])
elseif mode == 'live' then
  add_indexed(redis.call('SMEMBERS', P .. 'jl:' .. ARGV[3]), P .. 'jl:' .. ARGV[3], 'SREM', LIVE, nil, ARGV[4])
elseif mode == 'query' then
  local key, state, job, worker = P .. ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local since = ARGV[7] ~= '' and tonumber(ARGV[7]) or nil
  local cscore, cid = ARGV[8], ARGV[9]
  local limit, budget, tidy = tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12] == '1'
  local start = 0
  local tie = nil  -- score of the cursor when its entry is gone: skip ties >= its id
  if cscore ~= '' then
    local sc = redis.call('ZSCORE', key, cid)
    if sc and tonumber(sc) == tonumber(cscore) then
      start = redis.call('ZREVRANK', key, cid) + 1
    else
      start = redis.call('ZCOUNT', key, '(' .. cscore, '+inf')
      tie = tonumber(cscore)
    end
  end
  out[1], out[2] = '', ''
  local found, examined, gone, last_s, last_id, done = 0, 0, {}, nil, nil, false
  while not done and found < limit and examined < budget do
    local batch = redis.call('ZREVRANGE', key, start, start + 199, 'WITHSCORES')
    if #batch == 0 then done = true break end
    for k = 1, #batch, 2 do
      local id, score = batch[k], tonumber(batch[k + 1])
      if since and score < since then done = true break end
      examined = examined + 1
      last_s, last_id = batch[k + 1], id
      if not (tie and score == tie and id >= cid) then
        local row = task_row(id)
        if not row then
          gone[#gone + 1] = id
        elseif (state == '' or row[1] == state)
            and (job == '' or redis.call('HGET', task_key(id), 'j') == job)
            and (worker == '' or redis.call('ZSCORE', P .. 'tw:' .. worker, id)) then
          out[#out + 1] = row
          found = found + 1
        end
      end
      if found >= limit or examined >= budget then break end
    end
    start = start + 200
  end
  if not done and last_id then
    -- more may follow: is there an entry after the last one examined (and not too old)?
    local rank = redis.call('ZREVRANK', key, last_id)
    local nxt = rank and redis.call('ZREVRANGE', key, rank + 1, rank + 1, 'WITHSCORES') or {}
    if #nxt > 0 and not (since and tonumber(nxt[2]) < since) then
      out[1], out[2] = last_s, last_id
    end
  end
  if tidy then
    for _, id in ipairs(gone) do redis.call('ZREM', key, id) end
  end
elseif mode == 'detail' then
  out[1] = task_row(ARGV[3]) or false
  if out[1] then
    for _, entry in ipairs(redis.call('LRANGE', P .. 'ta:' .. ARGV[3], 0, -1)) do out[#out + 1] = entry end
  end
end
return out
