--! requires: common
-- workers.register: store a worker, heartbeat = server time.
-- P.."workers" HASH id -> JSON (id, host, pid, concurrency, capacity, started_at)
-- P.."hb"      ZSET id -> last heartbeat (server time; 0 = deregistered)
-- P.."drain"   SET of draining workers
-- ARGV: prefix, id, JSON, draining (0/1).
local id = ARGV[2]
redis.call('HSET', P .. 'workers', id, ARGV[3])
redis.call('ZADD', P .. 'hb', NOW, id)
redis.call('HDEL', P .. 'blk', id)
if ARGV[4] == '1' then
  redis.call('SADD', P .. 'drain', id)
else
  redis.call('SREM', P .. 'drain', id)
end
notify()
return 1
