--! requires: common
-- workers.list: every worker with its heartbeat, draining flag and load (its assigned tasks).
-- ARGV: prefix. Reply: {id, JSON, heartbeat, draining 0/1, load, blocked, ...}.
local out = {}
local all = redis.call('HGETALL', P .. 'workers')
for k = 1, #all, 2 do
  local id = all[k]
  out[#out + 1] = id
  out[#out + 1] = all[k + 1]
  out[#out + 1] = redis.call('ZSCORE', P .. 'hb', id) or '0'
  out[#out + 1] = redis.call('SISMEMBER', P .. 'drain', id)
  out[#out + 1] = redis.call('SCARD', P .. 'wa:' .. id)
  out[#out + 1] = redis.call('HGET', P .. 'blk', id) or '0'
end
return out
