--! requires: common jobs
-- jobs.update: replace a job only if the caller's version is the stored one (optimistic);
-- next_fire_at is replaced, the high-water mark and the paused flag are kept; the version
-- becomes next_version(stored) (lib/jobs.lua).
-- ARGV: prefix, name, config JSON, expected version, next_fire_at ("" = none), enabled (0/1),
-- op id. Reply: {'OK', new version} | {'NOTFOUND'} | {'CONFLICT', stored version}; a retry of
-- the call that made the stored version (same op id) gets {'OK', that version}.
local name, op = ARGV[2], ARGV[7]
local st = job_state(name)
if not st then
  return {'NOTFOUND'}
end
if st.op == op and st.v == next_version(ARGV[4]) then
  return {'OK', st.v}
end
if tonumber(st.v) ~= tonumber(ARGV[4]) then
  return {'CONFLICT', st.v}
end
st.v = next_version(st.v)
st.n = ARGV[5]
st.e = ARGV[6]
st.op = op
redis.call('HSET', P .. 'jobs', name, ARGV[3])
put_job_state(name, st)
notify()
return {'OK', st.v}
