--! requires: common
-- queues.report: append results (JSON) to the result list, take their attempts out of the
-- worker's in-flight list, cap the result list, and wake the leader.
-- ARGV: prefix, worker id, results cap, then (attempt id, result JSON) pairs.
local replay = op_replay()
if replay then return replay end
local inflight = P .. 'if:' .. ARGV[2]
local cap = tonumber(ARGV[3])
local len = 0
for i = 4, #ARGV, 2 do
  len = redis.call('RPUSH', P .. 'results', ARGV[i + 1])
  redis.call('LREM', inflight, 1, ARGV[i])
end
if len > cap then
  redis.call('LTRIM', P .. 'results', -cap, -1)
end
notify()
return op_reply(len)
