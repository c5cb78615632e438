--! requires: common tasks queues
-- queues.report: append results (JSON) to the result list, cap the result list, and wake the
-- leader; with settling asked for (a retention given: the worker does not sign its results)
-- the worker's current unsigned successes are settled right here (lib/queues.lua
-- report_results says which and when the leader is woken).
-- ARGV: prefix, worker id, results cap, retention ('' = do not settle), then one result JSON
-- each (at most a few thousand).
local replay = op_replay()
if replay then return replay end
return op_reply(report_results(ARGV[2], tonumber(ARGV[3]), ARGV[4], 5))
