--! requires: common
-- workers.heartbeat: refresh the heartbeat (server time) and the draining flag.
-- ARGV: prefix, id, draining (0/1). Reply: 1, or 0 when the worker is unknown (reaped).
local id = ARGV[2]
if not redis.call('ZSCORE', P .. 'hb', id) then
  return 0
end
redis.call('ZADD', P .. 'hb', NOW, id)
if ARGV[3] == '1' then
  redis.call('SADD', P .. 'drain', id)
else
  redis.call('SREM', P .. 'drain', id)
end
return 1
