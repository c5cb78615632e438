--! requires: common tasks
-- Task reads, each one consistent snapshot. Reply: task rows (see task_reply); for 'get',
-- false (nil) in place of a missing task.
--   prefix, 'get', id...                     the tasks by id
--   prefix, 'ready', now, limit              pending/retrying with not_before <= now, oldest first
--   prefix, 'overdue', now, limit            dispatched/running with deadline < now, earliest first
--   prefix, 'assigned', worker               dispatched/running tasks of a worker
--   prefix, 'live', job                      non-terminal tasks of a job
--   prefix, 'list', state|'', job|'', limit  candidates for tasks.list (Python sorts them by
--                                            updated_at and keeps `limit`)
local mode = ARGV[2]
local out = {}
local function add_ids(ids)
  for _, id in ipairs(ids) do
    local row = task_row(id)
    if row then out[#out + 1] = row end
  end
end

if mode == 'get' then
  for i = 3, #ARGV do
    out[#out + 1] = task_row(ARGV[i]) or false
  end
elseif mode == 'ready' then
  add_ids(redis.call('ZRANGEBYSCORE', P .. 'ready', '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4])))
elseif mode == 'overdue' then
  add_ids(redis.call('ZRANGEBYSCORE', P .. 'dl', '-inf', '(' .. ARGV[3], 'LIMIT', 0, tonumber(ARGV[4])))
elseif mode == 'assigned' then
  add_ids(redis.call('SMEMBERS', P .. 'wa:' .. ARGV[3]))
elseif mode == 'live' then
  add_ids(redis.call('SMEMBERS', P .. 'jl:' .. ARGV[3]))
elseif mode == 'list' then
  local state, job, limit = ARGV[3], ARGV[4], tonumber(ARGV[5])
  -- walk an index from its newest end, keeping tasks in `state` (any when ''), until `limit`
  local function scan(key, parse_member)
    local found, start = 0, 0
    while found < limit do
      local members = redis.call('ZREVRANGE', key, start, start + 199)
      if #members == 0 then break end
      for _, m in ipairs(members) do
        local id = m
        if parse_member then
          local _
          _, id = split_exp_member(m)
        end
        local row = id and task_row(id)
        if row and (state == '' or row[1] == state) then
          out[#out + 1] = row
          found = found + 1
          if found >= limit then break end
        end
      end
      start = start + 200
    end
  end
  if job ~= '' then
    scan(P .. 'jt:' .. job, false)
  elseif state ~= '' then
    if TERMINAL[state] then
      scan(P .. 'x:' .. state, true)
    elseif READY[state] then
      scan(P .. 'ready', false)
    elseif ASSIGNED[state] then
      scan(P .. 'dl', false)
    end
  else
    for _, s in ipairs(TERMINAL_STATES) do scan(P .. 'x:' .. s, true) end
    scan(P .. 'ready', false)
    scan(P .. 'dl', false)
  end
end
return out
