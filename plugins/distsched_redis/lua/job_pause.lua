--! requires: common jobs
-- jobs.set_paused: pause or resume; a given next_fire_at replaces the stored one.
-- ARGV: prefix, name, paused (0/1), next_fire_at ("" = keep). Reply: 1, or 0 when unknown.
-- (Idempotent as it is: a retry sets the same values.)
local name = ARGV[2]
local st = job_state(name)
if not st then
  return 0
end
st.p = ARGV[3]
if ARGV[4] ~= '' then
  st.n = ARGV[4]
end
put_job_state(name, st)
notify()
return 1
