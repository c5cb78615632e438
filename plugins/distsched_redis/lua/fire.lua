--! requires: common tasks jobs
-- jobs.fire (fenced): per firing, atomically: check that the job's next_fire_at is still the
-- expected one and that the job is enabled and not paused (a pause committed after the leader
-- read the job due wins: the firing is a conflict), create the slot tasks whose ids do not
-- exist yet, advance next_fire_at and the high-water mark last_slot, and keep the due index
-- right. A serial job's new pending task (serial limit given) is held (lib/tasks.lua, sh:)
-- while the job has that many tasks live and not held, or held ones: it leaves that queue
-- in slot order, when the job has room, rather than fill every read of the ready ones.
-- With a max_backlog too, a serial job's new pending task is stored `skipped` instead
-- (reason "overlap: backlog full (max_backlog = N)", as ports.Firing.backlog_full) while the job
-- has serial limit + max_backlog tasks live, those of this firing counted.
-- ARGV: prefix, fence token, retention, then per firing:
--   job, expected_next, next_fire_at ("" = none), last_slot ("" = none), serial limit ("" =
--   not serial), max_backlog ("" = none), task count, tasks.
-- Reply: {'OK', created, existing, number of conflicts, conflicting job names..., ids of the
-- tasks stored skipped for max_backlog..., ids of the `existing` tasks left as they were
-- (as many as `existing`)} or {'FENCED', current lease}.
local replay = op_replay()
if replay then return replay end
if not fence_ok(ARGV[2]) then return fenced_reply() end
configure_retention(ARGV[3])
local created, existing, conflicts, skipped, there = 0, 0, {}, {}, {}
local i = 4
while i <= #ARGV do
  local job, expected, nxt, last = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local serial, backlog = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local ntasks = tonumber(ARGV[i + 6])
  local first = i + 7
  i = first + ntasks
  local st = job_state(job)
  -- a job paused or disabled since the leader read it due does not fire
  if not st or st.n == '' or tonumber(st.n) ~= tonumber(expected) or st.p ~= '0' or st.e ~= '1' then
    conflicts[#conflicts + 1] = job
  else
    local held, admitted = 0, 0
    if serial then
      held = redis.call('ZCARD', P .. 'sh:' .. job)
      admitted = redis.call('SCARD', P .. 'jl:' .. job) - held
    end
    for k = first, first + ntasks - 1 do
      local t = parse_task(ARGV[k])
      if redis.call('EXISTS', task_key(t.id)) == 1 then
        existing = existing + 1
        there[#there + 1] = t.id
      else
        local hold = false
        if serial and t.s == 'pending' and backlog and admitted + held >= serial + backlog then
          -- the backlog is full: recorded skipped, as Task.skipped (finished at its creation)
          t.s, t.fa = 'skipped', t.c
          local reason = cjson.encode('overlap: backlog full (max_backlog = ' .. backlog .. ')')
          t.d = (t.d == '{}' or t.d == '') and ('{"reason":' .. reason .. '}')
            or (string.sub(t.d, 1, -2) .. ',"reason":' .. reason .. '}')
          skipped[#skipped + 1] = t.id
        elseif serial and t.s == 'pending' then
          hold = held > 0 or admitted >= serial
          if hold then held = held + 1 else admitted = admitted + 1 end
        end
        write_task(t, 1, nil, hold)
        created = created + 1
      end
    end
    if held > 0 then
      redis.call('SADD', P .. 'shj', job)
      redis.call('HSET', P .. 'shl', job, serial)
    end
    st.n = nxt
    st.l = last
    put_job_state(job, st)
  end
end
notify()
local reply = {'OK', created, existing, #conflicts}
for _, name in ipairs(conflicts) do reply[#reply + 1] = name end
for _, id in ipairs(skipped) do reply[#reply + 1] = id end
for _, id in ipairs(there) do reply[#reply + 1] = id end
return op_reply(reply)
