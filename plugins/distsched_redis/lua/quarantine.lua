--! requires: common tasks
-- quarantine: move a record the engine cannot decode out of the way, keeping its bytes.
-- P.."qr"               HASH "<kind>:<id>" -> JSON {kind, id, reason, at}: what is quarantined
-- P.."qseq", P.."qs"     the quarantine's sequence number and each entry's (common.lua's
--                       quarantine_entry)
-- P.."qd:<kind>:<id>"   the record's bytes (a task's hash renamed; a HASH of the raw fields
--                       of a job, worker or count)
-- ARGV: prefix, kind (task | job | worker | scheduler | count), id, reason.
-- Reply: 1 when newly quarantined, 0 when it already was (or is gone: a job's due entry left
-- alone is removed).
local kind, id, reason = ARGV[2], ARGV[3], ARGV[4]
local data = P .. 'qd:' .. kind .. ':' .. id
local moved = false
if kind == 'task' then
  local key = task_key(id)
  if redis.call('EXISTS', key) == 1 then
    -- the index entries it may have: fields are read as raw text, never parsed
    local cur = redis.call('HMGET', key, 's', 'w', 'j')
    local s, w, j = cur[1], cur[2], cur[3]
    redis.call('ZREM', P .. 'ready', id)
    redis.call('ZREM', P .. 'dl', id)
    redis.call('ZREM', P .. 'tc', id)
    if type(s) == 'string' and s ~= '' then redis.call('ZREM', P .. 'ts:' .. ts_group(s), id) end
    if type(w) == 'string' and w ~= '' then
      redis.call('SREM', P .. 'wa:' .. w, id)
      redis.call('ZREM', P .. 'tw:' .. w, id)
    end
    if type(j) == 'string' and j ~= '' then
      redis.call('SREM', P .. 'jl:' .. j, id)
      redis.call('ZREM', P .. 'jt:' .. j, id)
    end
    if type(s) == 'string' and (READY[s] or ASSIGNED[s]) then count_delta(s, -1) end
    redis.call('RENAME', key, data)
    redis.call('PERSIST', data)
    moved = true
  end
elseif kind == 'job' then
  local cfg = redis.call('HGET', P .. 'jobs', id)
  local st = redis.call('HGET', P .. 'jst', id)
  if cfg or st then
    redis.call('HSET', data, 'config', cfg or '', 'state', st or '')
    redis.call('HDEL', P .. 'jobs', id)
    redis.call('HDEL', P .. 'jst', id)
    redis.call('ZREM', P .. 'due', id)
    redis.call('SREM', P .. 'joff', id)
    redis.call('ZREM', P .. 'jn', id)  -- else every reader's page reads all names (jobs.page)
    moved = true
  else
    -- only a due entry is left (its job's config and state are gone): nothing to keep, and
    -- the entry would hold the leader's next due time in the past for ever
    redis.call('ZREM', P .. 'due', id)
    redis.call('ZREM', P .. 'jn', id)
  end
elseif kind == 'worker' then
  local rec = redis.call('HGET', P .. 'workers', id)
  if rec then
    redis.call('HSET', data, 'record', rec)
    redis.call('HDEL', P .. 'workers', id)
    redis.call('ZREM', P .. 'hb', id)
    redis.call('SREM', P .. 'drain', id)
    redis.call('HDEL', P .. 'blk', id)
    moved = true
  end
elseif kind == 'scheduler' then
  local rec = redis.call('HGET', P .. 'sched', id)
  if rec then
    redis.call('HSET', data, 'record', rec)
    redis.call('HDEL', P .. 'sched', id)
    redis.call('HDEL', P .. 'srole', id)
    redis.call('ZREM', P .. 'shb', id)
    moved = true
  end
elseif kind == 'count' then
  local raw = redis.call('HGET', P .. 'cnt', id)
  if raw and not integer_text(raw) then
    redis.call('HSET', data, 'value', raw)
    redis.call('HDEL', P .. 'cnt', id)
    moved = true
  end
end
if not moved then
  return 0
end
flush_counts()
quarantine_entry(kind, id, reason)
notify()
return 1
