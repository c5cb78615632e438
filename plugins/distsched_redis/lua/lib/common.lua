-- distsched: helpers shared by every script (prepended by scripts.py; exists once here).
--
-- Conventions of every script:
--   ARGV[1]  the key prefix "{<namespace>}:" - every key is built from it, so all keys of a
--            deployment share one hash tag (one cluster slot);
--   KEYS[1]  a real key of that slot (the op-id reply cache for writes) so cluster clients
--            route the call; keys derived from data are built here from the prefix.
-- The current call's KEYS, ARGV and prefix, set by begin_call (below), which scripts.py
-- makes the first step of every script: as an EVAL script and as a function of the library
-- (FCALL), whose locals live on between calls, so all per-call state is reset there.
local KEYS, ARGV, P

-- Server time, read once per script: a number and the exact text "<sec>.<usec>". A script
-- marked "--! clock: lazy" (begin_call's lazy_clock, set by scripts.py) reads it only when
-- it calls read_clock() - submit, which needs no time for a new pending task.
local NOW_T, NOW_S, NOW
local function read_clock()
  if NOW then return end
  NOW_T = redis.call('TIME')
  NOW_S = NOW_T[1] .. '.' .. string.format('%06d', tonumber(NOW_T[2]))
  NOW = tonumber(NOW_S)
end

-- The lease's expiry as the status tells it ("<sec>.<usec>"), for a lease key just given a
-- TTL of `ttl` ms. Redis drops the key once its millisecond clock is past the key's expiry
-- (a whole millisecond: the time of the SET/PEXPIRE, truncated, plus ttl), i.e. up to 1 ms
-- after NOW + ttl; 2 ms more, so that a lease said to be expired can always be taken.
local function lease_expiry(ttl)
  return string.format('%.6f', NOW + ttl / 1000 + 0.002)
end

-- A stored value a script computes with or scores an index by, as a finite number; nil when
-- it is not one. Lua's tonumber takes "nan" and "inf" (it parses with strtod), and Redis
-- refuses NaN as a score: a stored "nan" passed a tonumber check and failed the script at
-- its batched ZADD, half-way (a script's writes are not rolled back). n - n is 0 only for a
-- finite n.
local function finite(x)
  local n = tonumber(x)
  if n and n - n == 0 then return n end
  return nil
end

-- True when stored value x is an integer as HINCRBY takes it ("nan" and "1.5" are numbers to
-- tonumber, and not counts).
local function integer_text(x)
  return string.match(x, '^%-?%d+$') ~= nil
end

-- How long reply caches (op ids) live, in milliseconds.
local OP_TTL_MS = 60000

-- The fence: the first step of every leader write. The lease key holds "<node_id>|<term>";
-- a write is allowed only while it holds exactly the writer's token.
local function fence_ok(token)
  return redis.call('GET', P .. 'lease') == token
end

local function fenced_reply()
  return {'FENCED', redis.call('GET', P .. 'lease') or ''}
end

-- Idempotent replies: every mutating call carries an op id (KEYS[1] = P.."op:"..id). A call
-- retried by the client after a lost reply finds the first reply here and changes nothing.
local function op_replay()
  local cached = redis.call('GET', KEYS[1])
  if cached then
    return cjson.decode(cached)
  end
  return nil
end

-- Per-state task counts (P.."cnt") change by many small steps in one script; they are
-- summed here and written once, at the end (op_reply, or an explicit flush_counts()).
local CNT = {}

local function count_delta(state, delta)
  CNT[state] = (CNT[state] or 0) + delta
end

-- Record that `kind`:`id` was moved aside (its bytes already under P.."qd:<kind>:<id>"): its
-- entry in P.."qr" (replacing an earlier one of the same record), the quarantine's sequence
-- number P.."qseq" (INCR: every move counts, a record moved aside again too; a drop does not
-- lower it), and the entry's number in P.."qs" (ZSET "<kind>:<id>" -> number: what
-- quarantine_since.lua reads). Needs read_clock() first. A number or an index that is not
-- one (written by something else) starts again, instead of failing the move half-way: the
-- leader then takes the number gone back for a store that lost its data.
local function quarantine_entry(kind, id, reason)
  local field = kind .. ':' .. id
  redis.call('HSET', P .. 'qr', field, cjson.encode({kind = kind, id = id, reason = reason, at = NOW}))
  local n = redis.pcall('INCR', P .. 'qseq')
  if type(n) ~= 'number' then
    redis.call('DEL', P .. 'qseq', P .. 'qs')
    n = redis.call('INCR', P .. 'qseq')
  end
  local added = redis.pcall('ZADD', P .. 'qs', n, field)
  if type(added) == 'table' and added.err then
    redis.call('DEL', P .. 'qs')
    redis.call('ZADD', P .. 'qs', n, field)
  end
end

local function flush_counts()
  for state, delta in pairs(CNT) do
    if delta ~= 0 then
      local r = redis.pcall('HINCRBY', P .. 'cnt', state, delta)
      if type(r) == 'table' and r.err then
        -- a count that is not an integer (a hostile or broken write): keep its bytes in
        -- quarantine and start the count again, instead of failing every script after it
        read_clock()
        local raw = redis.call('HGET', P .. 'cnt', state) or ''
        redis.call('HSET', P .. 'qd:count:' .. state, 'value', raw)
        quarantine_entry('count', state, 'the count of state ' .. state .. ' was not an integer')
        redis.call('HSET', P .. 'cnt', state, math.max(0, delta))
      end
    end
  end
  CNT = {}
end

-- Set and sorted-set writes of many tasks are collected per (command, key) and written at
-- the end of the script (op_reply, or an explicit flush_batched()): one ZADD, ZREM, SADD,
-- SREM or RPUSH per key instead of one per task. Order between keys does not matter (the
-- script is atomic); a script touches a member at most once per key. Read an index written
-- by this script only after flush_batched().
local BATCH, BATCH_ORDER = {}, {}

local function batch_args(cmd, key)
  local id = cmd .. ' ' .. key
  local args = BATCH[id]
  if not args then
    args = {}
    BATCH[id] = args
    BATCH_ORDER[#BATCH_ORDER + 1] = {cmd, key, args}
  end
  return args
end

-- cmd key member (ZREM, SADD, SREM, RPUSH)
local function batch1(cmd, key, member)
  local args = batch_args(cmd, key)
  args[#args + 1] = member
end

-- ZADD key score member ('ZADD GT': a member's score is only ever raised)
local function batch2(cmd, key, score, member)
  local args = batch_args(cmd, key)
  args[#args + 1] = score
  args[#args + 1] = member
end

-- A sorted set of up to 128 members (zset-max-listpack-entries) is a listpack, in which a
-- ZADD of a member scored above the others (every index here: scores are times) reads and
-- parses each score before it: 10-19 us at 60-128 members against 0.5 us in a skiplist, and
-- a batch of 100 into an empty set about 7 us a member (docs/redis.md, "Small sorted sets").
-- The indexes that fill and empty with every task (ready, dl, ts:pending, ts:assigned) sit
-- in that range under load, so a sorted set that will hold LISTPACK_MAX members or more
-- after a batched ZADD is made a skiplist first: a member longer than
-- zset-max-listpack-value (64 bytes; this one is 256) is in it while the batch is written,
-- and is removed right after; Redis does not turn a sorted set back into a listpack while
-- it exists. Smaller sets stay listpacks (a write under 4 us, and less memory).
-- Looking costs a command or two, so a key is looked at again only once that many members
-- were written to it since (LOOK_AGAIN: the function library's locals live on between
-- calls; a script's locals start afresh each call, so a script looks at every write): until
-- it could reach
-- LISTPACK_MAX for a small set, RECHECK for a skiplist (which, emptied meanwhile, is deleted
-- and born again a listpack, and is then converted at most RECHECK members late). The
-- encoding changes no reply; only the time a write takes.
local LISTPACK_MAX, RECHECK, LOOKED_MAX = 32, 64, 1000
local LONG_MEMBER = nil  -- 256 bytes 0xFF, never a task id (not UTF-8); built at first use (a
                         -- library's load runs without the string table)
local LOOK_AGAIN, LOOKED = {}, 0  -- key -> members to be written to it before the next look

-- Before `added` members are written to sorted set `key`: true when LONG_MEMBER was added
-- to it (the caller removes it after the write).
local function to_skiplist(key, added)
  local left = LOOK_AGAIN[key]
  if left then
    if left > added then
      LOOK_AGAIN[key] = left - added
      return false
    end
  else
    if LOOKED >= LOOKED_MAX then
      LOOK_AGAIN, LOOKED = {}, 0  -- bounded: jt:<job> keys are as many as the jobs
    end
    LOOKED = LOOKED + 1
  end
  local n = redis.call('ZCARD', key)
  if n + added < LISTPACK_MAX then
    LOOK_AGAIN[key] = LISTPACK_MAX - n - added
    return false
  end
  LOOK_AGAIN[key] = RECHECK
  if n > 0 and redis.call('OBJECT', 'ENCODING', key) == 'skiplist' then
    return false
  end
  LONG_MEMBER = LONG_MEMBER or string.rep('\255', 256)
  -- scored +inf: were the batch's write to fail and the script stop before the member is
  -- removed, no read of the tasks due or overdue by now would ever return it (and a history
  -- walk drops an entry whose task is gone)
  redis.call('ZADD', key, '+inf', LONG_MEMBER)
  return true
end

local function flush_batched()
  for _, b in ipairs(BATCH_ORDER) do
    local cmd, key, args = b[1], b[2], b[3]
    local n = #args
    local long = (cmd == 'ZADD' or cmd == 'ZADD GT') and to_skiplist(key, n / 2)
    for first = 1, n, 1000 do  -- 1000 is even: ZADD pairs stay together
      if cmd == 'ZADD GT' then
        redis.call('ZADD', key, 'GT', unpack(args, first, math.min(n, first + 999)))
      else
        redis.call(cmd, key, unpack(args, first, math.min(n, first + 999)))
      end
    end
    if long then redis.call('ZREM', key, LONG_MEMBER) end
  end
  BATCH, BATCH_ORDER = {}, {}
end

-- Tasks that reached a final state in this script, counted per minute of server time
-- (P.."tp:"..minute HASH state -> count, kept 2 hours), and each job's last finished task
-- (P.."jlast" HASH job -> "<state>|<at>|<task id>"); written once at the end (op_reply).
local FIN, JLAST = {}, {}
local THROUGHPUT_KEEP = 7200

local function note_finished(state, job, id)
  if state == 'skipped' then return end
  FIN[state] = (FIN[state] or 0) + 1
  if job ~= '' then JLAST[job] = state .. '|' .. NOW_S .. '|' .. id end
end

local function flush_finished()
  local key = nil
  for state, n in pairs(FIN) do
    key = key or (P .. 'tp:' .. math.floor(NOW / 60))
    local r = redis.pcall('HINCRBY', key, state, n)
    -- a figure that is not an integer (a hostile or broken write) starts again: the tasks'
    -- writes are done, and a statistic must not fail the script after them
    if type(r) == 'table' and r.err then redis.call('HSET', key, state, n) end
  end
  if key then redis.call('EXPIRE', key, THROUGHPUT_KEEP) end
  local pairs_ = {}
  for job, v in pairs(JLAST) do
    if redis.call('HEXISTS', P .. 'jobs', job) == 1 then
      pairs_[#pairs_ + 1] = job
      pairs_[#pairs_ + 1] = v
    end
  end
  if #pairs_ > 0 then redis.call('HSET', P .. 'jlast', unpack(pairs_)) end
  FIN, JLAST = {}, {}
end

local function op_reply(reply)
  flush_batched()
  flush_counts()
  flush_finished()
  redis.call('SET', KEYS[1], cjson.encode(reply), 'PX', OP_TTL_MS)
  return reply
end

-- Wake the leader (BLPOP in wait_for_activity); the list holds at most one token. A token
-- already there has not been taken yet: the pass it wakes comes after this script and sees
-- what it wrote, so nothing is pushed (under a stream of calls most find one: a read instead
-- of a push and a trim).
local function notify()
  if redis.call('LLEN', P .. 'notify') == 0 then
    redis.call('LPUSH', P .. 'notify', '1')
  end
end

-- Retention of terminal tasks, in seconds (set by configure_retention; tasks.lua uses it).
local RETENTION_DEFAULT = 604800
local RETENTION = RETENTION_DEFAULT

local function configure_retention(seconds)
  RETENTION = math.max(1, math.floor(tonumber(seconds)))
end

-- The first step of every script: this call's keys and arguments, fresh per-call state, and
-- the server time unless the script reads it lazily.
local function begin_call(keys, argv, lazy_clock)
  KEYS, ARGV, P = keys, argv, argv[1]
  NOW_T, NOW_S, NOW = nil, nil, nil
  CNT, BATCH, BATCH_ORDER, FIN, JLAST = {}, {}, {}, {}, {}
  RETENTION = RETENTION_DEFAULT
  if not lazy_clock then read_clock() end
end
