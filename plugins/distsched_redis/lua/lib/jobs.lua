-- distsched: job schedule state (prepended by scripts.py).
--
-- P.."jobs" HASH name -> config JSON (without name and version)
-- P.."jst"  HASH name -> "<version>|<next_fire_at>|<last_slot>|<paused 0/1>|<enabled 0/1>|<op>"
--           floats as the exact text Python wrote ("" = none); op = id of the last add or
--           update, so a retried call is recognised without a reply-cache key per job
-- P.."due"  ZSET name -> next_fire_at of the enabled, unpaused jobs that have a next slot,
--           so due() costs O(log jobs + due jobs).
-- P.."joff" SET of the names of the disabled jobs, so that jobs.count() costs O(1);
--           P.."joffb" marks it built (job_read.lua 'count' builds it once from P.."jst":
--           jobs stored before it existed).

-- A P.."jst" value as its fields.
local function parse_job_state(raw)
  local v, n, l, p, e, op = string.match(raw, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|?([^|]*)$')
  return {v = v, n = n, l = l, p = p, e = e, op = op or ''}
end

local function job_state(name)
  local raw = redis.call('HGET', P .. 'jst', name)
  if not raw then
    return nil
  end
  return parse_job_state(raw)
end

-- Whether a job's schedule state is left without its config (P.."jobs" lost the name: a
-- partial loss of the store's data, a hand-made HDEL): no read shows such a job, so it is no
-- job, and a new one of that name replaces it (drop_orphan_state) instead of being refused.
local function orphan_state(name)
  return redis.call('HEXISTS', P .. 'jobs', name) == 0 and redis.call('HEXISTS', P .. 'jst', name) == 1
end

-- Whether job `name` exists: its config and its schedule state are both stored.
local function job_exists(name)
  return redis.call('HEXISTS', P .. 'jst', name) == 1 and redis.call('HEXISTS', P .. 'jobs', name) == 1
end

local function drop_orphan_state(name)
  redis.call('HDEL', P .. 'jst', name)
  redis.call('ZREM', P .. 'due', name)
  redis.call('SREM', P .. 'joff', name)
  redis.call('HDEL', P .. 'jlast', name)
end

-- The version after stored version v (text): one more, written as integer text (a Lua
-- number from 10^14 on is written "1e+14", which no reader takes for a version); 1 again
-- from 2^31 - 1 on (PostgreSQL's integer, the narrowest column a store keeps a version in)
-- and below 1 - both written by something other than distsched. Versions are compared for
-- equality only.
local function next_version(v)
  local n = tonumber(v)
  if not n or n < 1 or n >= 2147483647 or n ~= math.floor(n) then return '1' end
  return string.format('%d', n + 1)
end

local function put_job_state(name, st)
  redis.call('HSET', P .. 'jst', name,
             st.v .. '|' .. st.n .. '|' .. st.l .. '|' .. st.p .. '|' .. st.e .. '|' .. st.op)
  if st.e == '0' then
    redis.call('SADD', P .. 'joff', name)
  else
    redis.call('SREM', P .. 'joff', name)
  end
  if st.e == '1' and st.p == '0' and st.n ~= '' then
    redis.call('ZADD', P .. 'due', st.n, name)
  else
    redis.call('ZREM', P .. 'due', name)
  end
end
