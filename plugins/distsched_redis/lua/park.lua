--! requires: common tasks
-- tasks.park (fenced): move ready tasks that no live worker may run out of `ready` into the
-- parked set of what they wait for (P.."pk:"..key, ZSET id -> until: when the wait runs
-- out), so that they do not fill the leader's ready reads. A task is parked only while its
-- stored version is the expected one, it is pending or retrying, in `ready` (not held, not
-- parked already). Its record keeps what it was: the hash fields pk (the key) and pn (its
-- `ready` score, not_before) say that it is parked and where it goes back. P.."pkk" ZSET
-- key -> the earliest until of its tasks (never later than it: a task that leaves the set
-- otherwise - a cancel - may leave it earlier; unpark.lua puts it right).
-- ARGV: prefix, fence token, then 4 per task: id, expected version, key, until.
-- Reply: {'OK', bits} or {'FENCED', current lease} (nothing written).
local replay = op_replay()
if replay then return replay end
if not fence_ok(ARGV[2]) then return fenced_reply() end
local ready = P .. 'ready'
local bits = {}
for i = 3, #ARGV - 3, 4 do
  local id, ev, k, upto = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = task_key(id)
  local cur = redis.call('HMGET', key, 'v', 's', 'pk')
  local nb = redis.call('ZSCORE', ready, id)
  if nb and cur[1] and tonumber(cur[1]) == tonumber(ev) and READY[cur[2]] and not cur[3] then
    redis.call('ZREM', ready, id)
    redis.call('HSET', key, 'pk', k, 'pn', nb)
    redis.call('ZADD', P .. 'pk:' .. k, upto, id)
    redis.call('ZADD', P .. 'pkk', 'LT', upto, k)
    bits[#bits + 1] = '1'
  else
    bits[#bits + 1] = '0'
  end
end
return op_reply({'OK', table.concat(bits)})
