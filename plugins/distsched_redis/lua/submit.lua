--! requires: common tasks
--! clock: lazy
-- tasks.submit (not fenced): store new tasks, idempotent by id (an existing id is left
-- unchanged), and wake the leader. No reply cache (no op key written per call): a call
-- retried after its reply was lost finds its own tasks stored, and a stored task whose
-- created_at and spec are exactly the ones sent counts as created by this call again (the
-- created_at is the submitting client's clock at submission, to the microsecond: another
-- submission of the same id does not have the same one).
-- ARGV: prefix, retention, then one task string each (see parse_task).
-- Reply: {'OK', bits} - '1' created (or created by the first try of this call), '0' the id
-- already existed.
configure_retention(ARGV[2])
local bits = {}
for i = 3, #ARGV do
  local t = parse_task(ARGV[i])
  local key = task_key(t.id)
  local created = false
  if redis.call('EXISTS', key) == 0 then
    if TERMINAL[t.s] then read_clock() end  -- its retention entry is scored by server time
    write_task(t, 1, nil)
    created = true
  else
    local cur = redis.call('HMGET', key, 'c', 'sp')
    created = cur[1] == t.c and cur[2] == t.sp
  end
  bits[#bits + 1] = created and '1' or '0'
end
flush_batched()
flush_counts()
notify()
return {'OK', table.concat(bits)}
