--! requires: common tasks
-- workers.reap (fenced): remove a dead worker, its queue, claim and in-flight lists, and
-- CAS-save the tasks the leader requeued - one atomic step.
-- ARGV: prefix, fence token, retention, worker id, then one task string each.
-- Reply: {'OK', bits} or {'FENCED', current lease}.
local replay = op_replay()
if replay then return replay end
if not fence_ok(ARGV[2]) then return fenced_reply() end
configure_retention(ARGV[3])
prune_expired(100 + 2 * (#ARGV - 4))
local id = ARGV[4]
redis.call('HDEL', P .. 'workers', id)
redis.call('ZREM', P .. 'hb', id)
redis.call('SREM', P .. 'drain', id)
redis.call('DEL', P .. 'q:' .. id, P .. 'c:' .. id, P .. 'if:' .. id)
local bits = cas_tasks(5)
return op_reply({'OK', bits})
