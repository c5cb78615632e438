--! requires: common
-- workers.heartbeat: refresh the heartbeat (server time), the draining flag and the number
-- of blocked execution slots (P.."blk" HASH id -> n, absent when 0).
-- ARGV: prefix, id, draining (0/1), blocked. Reply: 1, or 0 when the worker is unknown (reaped).
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
if (tonumber(ARGV[4]) or 0) > 0 then
  redis.call('HSET', P .. 'blk', id, ARGV[4])
else
  redis.call('HDEL', P .. 'blk', id)
end
return 1
