--! requires: common
-- The scheduler node registry (not fenced: standbys write here too).
-- P.."sched" HASH id -> JSON (id, host, pid, started_at); P.."shb" ZSET id -> heartbeat
-- (server time); P.."srole" HASH id -> leader | standby.
--   prefix, 'register', id, JSON, role -> 1 (also drops nodes silent for FORGET seconds)
--   prefix, 'heartbeat', id, role      -> 1, or 0 when the node is unknown
--   prefix, 'deregister', id           -> 1
local FORGET = 3600
local mode, id = ARGV[2], ARGV[3]
if mode == 'register' then
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', P .. 'shb', '-inf', NOW - FORGET)) do
    redis.call('HDEL', P .. 'sched', old)
    redis.call('HDEL', P .. 'srole', old)
    redis.call('ZREM', P .. 'shb', old)
  end
  redis.call('HSET', P .. 'sched', id, ARGV[4])
  redis.call('HSET', P .. 'srole', id, ARGV[5])
  redis.call('ZADD', P .. 'shb', NOW, id)
  return 1
elseif mode == 'heartbeat' then
  if not redis.call('ZSCORE', P .. 'shb', id) then return 0 end
  redis.call('ZADD', P .. 'shb', NOW, id)
  redis.call('HSET', P .. 'srole', id, ARGV[4])
  return 1
elseif mode == 'deregister' then
  redis.call('HDEL', P .. 'sched', id)
  redis.call('HDEL', P .. 'srole', id)
  redis.call('ZREM', P .. 'shb', id)
  return 1
end
return 0
