--! requires: common
-- Reads for the status and the overview, each one consistent snapshot:
--   prefix, 'throughput', minutes -> {minute, "state|n|state|n...", ...} oldest first, the
--                                    current minute last (P.."tp:"..minute, see common.lua)
--   prefix, 'queues'              -> {worker, queued, ...}: LLEN of each registered worker's
--                                    queue plus its claim list
--   prefix, 'lease'               -> {holder, term, acquired, renewed, expires, now,
--                                    interval} or {} (P.."leaseinfo", written by the lease
--                                    scripts); interval: the holder's renew interval ('i')
--                                    while it is of the record's term ('it'), else nil (a
--                                    lease taken by a node of an older version)
--   prefix, 'schedulers'          -> {id, JSON, heartbeat, role, ...}
local mode = ARGV[2]
local out = {}
if mode == 'throughput' then
  local minutes = tonumber(ARGV[3])
  local current = math.floor(NOW / 60)
  for m = current - minutes + 1, current do
    local flat = redis.call('HGETALL', P .. 'tp:' .. m)
    out[#out + 1] = tostring(m)
    out[#out + 1] = table.concat(flat, '|')
  end
elseif mode == 'queues' then
  for _, id in ipairs(redis.call('HKEYS', P .. 'workers')) do
    out[#out + 1] = id
    out[#out + 1] = redis.call('LLEN', P .. 'q:' .. id) + redis.call('LLEN', P .. 'c:' .. id)
  end
elseif mode == 'lease' then
  local info = redis.call('HMGET', P .. 'leaseinfo', 'h', 't', 'a', 'r', 'e', 'i', 'it')
  if info[1] then
    out = {info[1], info[2], info[3], info[4], info[5], NOW_S, info[7] == info[2] and info[6] or false}
  end
elseif mode == 'schedulers' then
  local all = redis.call('HGETALL', P .. 'sched')
  for k = 1, #all, 2 do
    local id = all[k]
    out[#out + 1] = id
    out[#out + 1] = all[k + 1]
    out[#out + 1] = redis.call('ZSCORE', P .. 'shb', id) or '0'
    out[#out + 1] = redis.call('HGET', P .. 'srole', id) or 'standby'
  end
end
return out
