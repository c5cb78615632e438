--! requires: common tasks
-- tasks.save (fenced): optimistic write of a batch of tasks and, in the same step, the
-- acknowledgement of the oldest `ack` results.
-- ARGV: prefix, fence token, retention, ack, then one task string each.
-- Reply: {'OK', bits} or {'FENCED', current lease} (nothing written).
local replay = op_replay()
if replay then return replay end
if not fence_ok(ARGV[2]) then return fenced_reply() end
configure_retention(ARGV[3])
local bits = cas_tasks(5)
local ack = tonumber(ARGV[4])
if ack > 0 then
  redis.call('LTRIM', P .. 'results', ack, -1)
end
return op_reply({'OK', bits})
