--! requires: common tasks
-- workers.reap (fenced): CAS-save the tasks the leader requeued and remove the dead worker -
-- its record, heartbeat, queue and claim lists - one atomic step. The worker is
-- removed only when every task write succeeded and nothing is assigned to it any more. A
-- write can fail because the worker, only slow, took the task (dispatched -> running) after
-- the leader read what it held: then the writes that could be made are made, the worker's
-- heartbeat entry is dropped (it is dead from now on: its next heartbeat returns 0, so it
-- drops what it runs) and its record and lists stay for the leader's next pass, which reads
-- what it still holds and reaps it again.
-- ARGV: prefix, fence token, retention, worker id, then one task string each.
-- Reply: {'OK', bits} or {'FENCED', current lease}.
local replay = op_replay()
if replay then return replay end
if not fence_ok(ARGV[2]) then return fenced_reply() end
configure_retention(ARGV[3])
local id = ARGV[4]
local bits = cas_tasks(5)
flush_batched()  -- the task writes' index changes (wa:<id> among them) before reading wa:<id>
redis.call('ZREM', P .. 'hb', id)
if string.find(bits, '0', 1, true) or redis.call('SCARD', P .. 'wa:' .. id) > 0 then
  return op_reply({'OK', bits})
end
redis.call('HDEL', P .. 'workers', id)
redis.call('SREM', P .. 'drain', id)
redis.call('HDEL', P .. 'blk', id)
redis.call('DEL', P .. 'q:' .. id, P .. 'c:' .. id)
return op_reply({'OK', bits})
