--! requires: common
-- workers.deregister: mark the worker draining and dead at once (heartbeat 0) so the leader
-- reaps it now, requeuing what it still holds.
-- ARGV: prefix, id.
local id = ARGV[2]
if redis.call('ZSCORE', P .. 'hb', id) then
  redis.call('ZADD', P .. 'hb', 0, id)
  redis.call('SADD', P .. 'drain', id)
end
notify()
return 1
