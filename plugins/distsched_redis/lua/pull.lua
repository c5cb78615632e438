--! requires: common tasks
-- queues.pull: take up to `max` entries of a worker's own queue (first the claim list that a
-- blocking BLMOVE filled, then the queue) and mark them
-- running (state, started_at = server time, version + 1, deadline = now + timeout). Entries
-- whose task is no longer dispatched to this worker with that attempt are dropped.
-- ARGV: prefix, worker id, max. Reply: task rows (see task_reply), then {'!bad', id} for each
-- entry whose task record cannot be read (a non-numeric version or timeout): the caller
-- quarantines those; the entries behind them are taken as usual.
-- The op cache keeps the entries taken ("<id>#<n>"); a retried call returns the current rows
-- of those that are still running on this worker with that attempt - never an attempt that
-- was re-dispatched elsewhere (or finished) while the reply was lost.
local w, max = ARGV[2], tonumber(ARGV[3])
local cached = redis.call('GET', KEYS[1])
if cached then
  local out = {}
  for _, entry in ipairs(cjson.decode(cached)) do
    local id, n = string.match(entry, '^(.*)#(%d+)$')
    if id then
      local cur = redis.call('HMGET', task_key(id), 's', 'w', 'n')
      if cur[1] == 'running' and cur[2] == w and cur[3] == n then
        local row = task_row(id)
        if row then out[#out + 1] = row end
      end
    end
  end
  return out
end
local queue, claim = P .. 'q:' .. w, P .. 'c:' .. w
local out, ids, bad = {}, {}, {}

local function take(entry)
  local id, n = string.match(entry, '^(.*)#(%d+)$')
  if not id then return end
  local key = task_key(id)
  local cur = redis.call('HMGET', key, 's', 'v', 'sa', 'u', 'w', 'n', 'da', 'fa', 'r', 'sp', 'd', 'g', 'to', 'j')
  if cur[1] ~= 'dispatched' or cur[5] ~= w or cur[6] ~= n then
    return  -- stale: re-dispatched, cancelled, finished or reassigned
  end
  if not tonumber(cur[2]) or not tonumber(cur[13]) then
    -- a record this script cannot read: moved aside by the caller (the row tells it why),
    -- never an error that would stop the entries behind it
    bad[#bad + 1] = id
    return
  end
  local v = tonumber(cur[2]) + 1
  redis.call('HSET', key, 's', 'running', 'v', v, 'sa', NOW_S, 'u', NOW_S)
  -- reindex() for dispatched -> running on the same worker, by hand
  count_delta('dispatched', -1)
  count_delta('running', 1)
  batch2('ZADD', P .. 'dl', NOW + tonumber(cur[13]), id)
  ids[#ids + 1] = entry
  cur[1], cur[2], cur[3], cur[4] = 'running', tostring(v), NOW_S, NOW_S
  out[#out + 1] = task_reply(id, cur)
end

-- a list that gave fewer entries than asked for is empty: not asked again
for _, list in ipairs({claim, queue}) do
  while #out < max do
    local want = max - #out
    local entries = redis.call('LPOP', list, want)
    if not entries then break end
    for _, entry in ipairs(entries) do take(entry) end
    if #entries < want then break end
  end
end
flush_batched()
flush_counts()
if #ids > 0 then
  redis.call('SET', KEYS[1], cjson.encode(ids), 'PX', OP_TTL_MS)
end
for _, id in ipairs(bad) do
  out[#out + 1] = {'!bad', id}  -- for codec: quarantine these
end
return out
