--! requires: common tasks
-- tasks.dispatch (fenced): move ready tasks to `dispatched` and, for each one moved, push its
-- attempt id ("<task id>#<dispatches>") onto its worker's queue. Only the fields a dispatch
-- changes travel (the spec and the rest of the record stay as stored): each task is one
-- string "<expected version>\31<n>\31<u>\31<da>\31<deadline>\31<#worker>\31" .. worker .. id.
-- A task is written only while its stored version is the expected one and it is pending or
-- retrying, and not parked (park.lua).
-- ARGV: prefix, fence token, retention, then one task string each.
-- Reply: {'OK', bits} or {'FENCED', current lease}.
local replay = op_replay()
if replay then return replay end
if not fence_ok(ARGV[2]) then return fenced_reply() end
configure_retention(ARGV[3])

local DISPATCH_PATTERN = '^' .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD .. FIELD .. '(.*)$'

local function parse_dispatch(str)
  local ev, n, u, da, dl, g, wl, rest = string.match(str, DISPATCH_PATTERN)
  wl = tonumber(wl)
  if not wl then error('distsched: a dispatch string without its 7 fields') end
  return {ev = ev, n = n, u = u, da = da, dl = dl, g = g, w = string.sub(rest, 1, wl), id = string.sub(rest, wl + 1)}
end

local bits, seen_workers = {}, {}
for i = 4, #ARGV do
  local t = parse_dispatch(ARGV[i])
  local key = task_key(t.id)
  local cur = redis.call('HMGET', key, 'v', 's', 'c', 'u', 'pk')
  if cur[1] and tonumber(cur[1]) == tonumber(t.ev) and READY[cur[2]] and not cur[5] then
    redis.call('HSET', key, 's', 'dispatched', 'v', tonumber(cur[1]) + 1, 'w', t.w, 'n', t.n,
               'u', t.u, 'da', t.da, 'sa', '', 'g', t.g)
    -- reindex() for pending/retrying -> dispatched, by hand: such a task holds no worker,
    -- and its job's sets do not change
    count_delta(cur[2], -1)
    count_delta('dispatched', 1)
    batch1('ZREM', P .. 'ready', t.id)
    if t.dl ~= '' then batch2('ZADD', P .. 'dl', t.dl, t.id) end
    -- history indexes (by created_at; a task stored before they existed: its update time)
    local c = cur[3] or cur[4]
    if not finite(c) then c = t.u end  -- a broken stored time must not fail the script half-way
    batch1('ZREM', P .. 'ts:' .. cur[2], t.id)
    batch2('ZADD', P .. 'ts:assigned', c, t.id)
    if t.w ~= '' then
      batch1('SADD', P .. 'wa:' .. t.w, t.id)
      batch1('RPUSH', P .. 'q:' .. t.w, t.id .. '#' .. t.n)
      batch2('ZADD', P .. 'tw:' .. t.w, c, t.id)
      seen_workers[t.w] = true
    end
    bits[#bits + 1] = '1'
  else
    bits[#bits + 1] = '0'
  end
end
for w, _ in pairs(seen_workers) do
  -- the key goes once nothing was dispatched to the worker for a retention period
  redis.call('EXPIRE', P .. 'tw:' .. w, RETENTION)
end
return op_reply({'OK', table.concat(bits)})
