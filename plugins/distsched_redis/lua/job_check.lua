--! requires: common jobs
-- jobs.check (the leader's housekeeping, not fenced: it only writes what P.."jst" says, and
-- is idempotent): walk the schedule states a slice a call (HSCAN from `cursor`, about `count`
-- names) and give back its P.."due" entry to every enabled, unpaused job that has a next
-- fire time and a config but no entry (a partial loss of Redis's data: the due index evicted
-- or deleted while the jobs stayed; such a job was listed, its next fire time in the past,
-- and never fired). The entry is scored by the state's own next fire time, so the job fires
-- as a scheduler back from downtime fires it (its misfire policy).
-- ARGV: prefix, cursor ('0' starts a walk), count[, 'configs'].
-- Reply: {next cursor ('0': the walk is over), name of each job given its entry back...}
-- With 'configs' it walks P.."jobs" instead and names each config whose schedule state is
-- gone (a partial loss, a hand-made HDEL): with no due entry (a paused job's) no read meets
-- such a half, which `status` counted as a job that no list showed; the caller puts it aside.
-- Nothing is written then.
if ARGV[4] == 'configs' then
  local scan = redis.call('HSCAN', P .. 'jobs', ARGV[2], 'COUNT', tonumber(ARGV[3]))
  local out = {scan[1]}
  local found = scan[2]
  for k = 1, #found, 2 do
    if redis.call('HEXISTS', P .. 'jst', found[k]) == 0 then out[#out + 1] = found[k] end
  end
  return out
end
local scan = redis.call('HSCAN', P .. 'jst', ARGV[2], 'COUNT', tonumber(ARGV[3]))
local out = {scan[1]}
local found = scan[2]
for k = 1, #found, 2 do
  local name = found[k]
  local st = parse_job_state(found[k + 1])
  local n = tonumber(st.n)
  if st.e == '1' and st.p == '0' and n and n == n and redis.call('ZSCORE', P .. 'due', name) == false
      and redis.call('HEXISTS', P .. 'jobs', name) == 1 then
    redis.call('ZADD', P .. 'due', st.n, name)
    out[#out + 1] = name
  end
end
return out
