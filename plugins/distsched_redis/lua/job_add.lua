--! requires: common jobs
-- jobs.add: store a new job with version 1 (refused when the name exists).
-- ARGV: prefix, name, config JSON, next_fire_at ("" = none), enabled (0/1), op id.
-- Reply: 'OK' or 'EXISTS'. A retry of the call that created the job (same op id) is 'OK'.
local name, op = ARGV[2], ARGV[6]
if orphan_state(name) then drop_orphan_state(name) end
local st = job_state(name)
if st then
  if st.op == op and st.v == '1' then return 'OK' end
  return 'EXISTS'
end
redis.call('HSET', P .. 'jobs', name, ARGV[3])
redis.call('ZADD', P .. 'jn', 0, name)
put_job_state(name, {v = '1', n = ARGV[4], l = '', p = '0', e = ARGV[5], op = op})
notify()
return 'OK'
