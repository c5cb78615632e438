--! requires: common tasks jobs
-- jobs.fire (fenced): per firing, atomically: check that the job's next_fire_at is still the
-- expected one and that the job is enabled and not paused (a pause committed after the leader
-- read the job due wins: the firing is a conflict), create the slot tasks whose ids do not
-- exist yet, advance next_fire_at and the high-water mark last_slot, and keep the due index
-- right.
-- ARGV: prefix, fence token, retention, then per firing:
--   job, expected_next, next_fire_at ("" = none), last_slot ("" = none), task count, tasks.
-- Reply: {'OK', created, existing, conflicting job names...} or {'FENCED', current lease}.
local replay = op_replay()
if replay then return replay end
if not fence_ok(ARGV[2]) then return fenced_reply() end
configure_retention(ARGV[3])
local created, existing, conflicts = 0, 0, {}
local i = 4
while i <= #ARGV do
  local job, expected, nxt, last = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ntasks = tonumber(ARGV[i + 4])
  local first = i + 5
  i = first + ntasks
  local st = job_state(job)
  -- a job paused or disabled since the leader read it due does not fire
  if not st or st.n == '' or tonumber(st.n) ~= tonumber(expected) or st.p ~= '0' or st.e ~= '1' then
    conflicts[#conflicts + 1] = job
  else
    for k = first, first + ntasks - 1 do
      if create_task(ARGV[k]) then
        created = created + 1
      else
        existing = existing + 1
      end
    end
    st.n = nxt
    st.l = last
    put_job_state(job, st)
  end
end
notify()
local reply = {'OK', created, existing}
for _, name in ipairs(conflicts) do reply[#reply + 1] = name end
return op_reply(reply)
