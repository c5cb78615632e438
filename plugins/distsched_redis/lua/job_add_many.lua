--! requires: common jobs
-- jobs.add_many: store new jobs with version 1; a name that exists (or comes twice in this
-- call) is left alone and answered '0'. A schedule state left without its config is no job.
-- ARGV: prefix, mode ('each', or 'all': all or nothing), then one string per job:
-- "name\31next_fire_at\31enabled\31config JSON" (next_fire_at "" = none, enabled 0/1).
-- Reply: {'OK', bits} ('1' stored, '0' exists); in mode 'all', when any name exists,
-- {'EXISTS', name...} (every existing name, in the order given) and nothing is written.
-- A retried call (same op id) gets the first reply.
local replay = op_replay()
if replay then return replay end
local FIRST = 3
if ARGV[2] == 'all' then
  local existing = {'EXISTS'}
  for i = FIRST, #ARGV do
    local name = string.match(ARGV[i], '^([^\31]*)\31')
    if job_exists(name) then existing[#existing + 1] = name end
  end
  if #existing > 1 then return op_reply(existing) end
end
local bits, seen = {}, {}
for i = FIRST, #ARGV do
  local name, nxt, enabled, config = string.match(ARGV[i], '^([^\31]*)\31([^\31]*)\31([^\31]*)\31(.*)$')
  if seen[name] or job_exists(name) then
    bits[#bits + 1] = '0'
  else
    seen[name] = true
    -- a schedule state left without its config is no job: the name is free (lib/jobs.lua)
    if orphan_state(name) then drop_orphan_state(name) end
    -- as put_job_state() for a new job, batched
    batch2('HSET', P .. 'jobs', name, config)
    batch2('ZADD', P .. 'jn', 0, name)
    batch2('HSET', P .. 'jst', name, '1|' .. nxt .. '||0|' .. enabled .. '|')
    if enabled == '1' and nxt ~= '' then
      batch2('ZADD', P .. 'due', nxt, name)
    elseif enabled == '0' then
      batch1('SADD', P .. 'joff', name)
    end
    bits[#bits + 1] = '1'
  end
end
notify()
return op_reply({'OK', table.concat(bits)})
