--! requires: common
-- queues.report: append results (JSON) to the result list, cap the result list, and wake the
-- leader.
-- ARGV: prefix, worker id, results cap, then one result JSON each (at most a few thousand).
local replay = op_replay()
if replay then return replay end
local cap = tonumber(ARGV[3])
local len
if #ARGV >= 4 then
  len = redis.call('RPUSH', P .. 'results', unpack(ARGV, 4))
else
  len = redis.call('LLEN', P .. 'results')
end
if len > cap then
  redis.call('LTRIM', P .. 'results', -cap, -1)
end
notify()
return op_reply(len)
