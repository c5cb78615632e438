--! requires: common tasks
-- tasks.unpark (fenced): move parked tasks (park.lua) back to `ready`, at their not_before
-- (pn), at most `limit`: first every task parked under the keys given (a worker that may
-- run them is live now), oldest until first, then those of any key whose until is at or
-- before `until` (their wait ran out). O(tasks moved + keys whose earliest until passed).
-- ARGV: prefix, fence token, until, limit, then the keys.
-- Reply: {'OK', how many moved} or {'FENCED', current lease} (nothing written).
local replay = op_replay()
if replay then return replay end
if not fence_ok(ARGV[2]) then return fenced_reply() end
local upto, limit = ARGV[3], tonumber(ARGV[4])
local moved = 0

-- Move the tasks of key k (those whose until is at or before `by`, when given).
local function take(k, by)
  local zk = P .. 'pk:' .. k
  while moved < limit do
    local ids
    if by then
      ids = redis.call('ZRANGEBYSCORE', zk, '-inf', by, 'LIMIT', 0, limit - moved)
    else
      ids = redis.call('ZRANGE', zk, 0, limit - moved - 1)
    end
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      redis.call('ZREM', zk, id)
      local key = task_key(id)
      local cur = redis.call('HMGET', key, 's', 'pk', 'pn')
      if cur[2] == k then
        redis.call('HDEL', key, 'pk', 'pn')
        local nb = finite(cur[3])
        if READY[cur[1]] and nb then redis.call('ZADD', P .. 'ready', nb, id) end
        moved = moved + 1
      end  -- else an entry of a record moved aside since: dropped
    end
  end
  local first = redis.call('ZRANGE', zk, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', P .. 'pkk', k)
  else
    redis.call('ZADD', P .. 'pkk', first[2], k)
  end
end

for i = 5, #ARGV do
  if moved >= limit then break end
  take(ARGV[i], nil)
end
if moved < limit then
  for _, k in ipairs(redis.call('ZRANGEBYSCORE', P .. 'pkk', '-inf', upto)) do
    if moved >= limit then break end
    take(k, upto)
  end
end
return op_reply({'OK', tostring(moved)})
