--! requires: common tasks
-- tasks.backfill (the leader's housekeeping, not fenced: it only adds index entries a task
-- should have, ZADD NX): give the tasks stored before the history indexes existed (by
-- distsched 0.1) their entries in tc, ts:<group> and tw:<worker>, so that tasks.query
-- (`distsched tasks list`, the dashboard) lists them; their records and the other indexes
-- were always there. It walks every retained task - the terminal states' x:<state>, then
-- ready and dl, which hold every other task - with ZSCAN, `limit` entries a call at most, and
-- resumes where the last call stopped (P.."hix": "<source>|<cursor>|<entries added this
-- round>"). A task that moved from one source to another during a round may be missed by it,
-- so rounds go on until one adds nothing; then P.."hix" reads "done" and every later call
-- returns at once. On a deployment that never ran 0.1 the first round adds nothing: one walk.
-- A task's score is its created_at (the c field, else the d JSON's created_at, else its
-- updated_at); an old record also gets its c field, which dispatch reads.
-- ARGV: prefix, limit, retention (a tw: key this creates expires after it).
-- Reply: {done (1/0), entries looked at, entries added}.
local state_key = P .. 'hix'
local at = redis.call('GET', state_key)
if at == 'done' then return {1, 0, 0} end
local limit = math.max(1, math.floor(tonumber(ARGV[2]) or 1000))
configure_retention(ARGV[3] or RETENTION)

local sources = {}
for _, s in ipairs(TERMINAL_STATES) do sources[#sources + 1] = 'x:' .. s end
sources[#sources + 1] = 'ready'
sources[#sources + 1] = 'dl'

local src, cursor, added = 1, '0', 0
if at then
  local a, b, c = string.match(at, '^(%d+)|(%d+)|(%d+)$')
  if a and tonumber(a) >= 1 and tonumber(a) <= #sources then
    src, cursor, added = tonumber(a), b, tonumber(c)
  end  -- anything else (written by hand): start the round again
end

local function created(f)
  local c = finite(f[1])
  if c then return c, false end
  if f[2] then
    local ok, d = pcall(cjson.decode, f[2])
    if ok and type(d) == 'table' then c = finite(d.created_at) end
  end
  if c then return c, true end
  return finite(f[5]) or NOW, false
end

local function index(id)
  local key = task_key(id)
  local f = redis.pcall('HMGET', key, 'c', 'd', 's', 'w', 'u')
  if type(f) ~= 'table' or f.err or type(f[3]) ~= 'string' then return 0 end  -- no task record here
  local c, from_d = created(f)
  if from_d then redis.call('HSET', key, 'c', string.format('%.17g', c)) end
  local n = redis.call('ZADD', P .. 'tc', 'NX', c, id)
  n = n + redis.call('ZADD', P .. 'ts:' .. ts_group(f[3]), 'NX', c, id)
  local w = f[4]
  if type(w) == 'string' and w ~= '' then  -- the worker it was dispatched to (last)
    local tw = P .. 'tw:' .. w
    n = n + redis.call('ZADD', tw, 'NX', c, id)
    if redis.call('TTL', tw) == -1 then redis.call('EXPIRE', tw, RETENTION) end
  end
  return n
end

local looked, added_now, scans = 0, 0, 0
while looked < limit and scans < 100 do
  scans = scans + 1
  local name = sources[src]
  local reply = redis.call('ZSCAN', P .. name, cursor, 'COUNT', math.min(limit - looked, 500))
  cursor = reply[1]
  local entries = reply[2]
  for k = 1, #entries, 2 do
    local id = entries[k]
    if string.sub(name, 1, 2) == 'x:' then
      local _, tid = split_exp_member(id)
      id = tid
    end
    if id then
      local n = index(id)
      added, added_now, looked = added + n, added_now + n, looked + 1
    end
  end
  if cursor == '0' then
    if src < #sources then
      src = src + 1
    elseif added == 0 then
      redis.call('SET', state_key, 'done')
      return {1, looked, added_now}
    else
      src, added = 1, 0  -- another round: a task may have moved past the walk
    end
  end
end
redis.call('SET', state_key, src .. '|' .. cursor .. '|' .. added)
return {0, looked, added_now}
