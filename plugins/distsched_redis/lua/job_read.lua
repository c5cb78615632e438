--! requires: common jobs
-- Job reads, each one consistent snapshot:
--   ARGV: prefix, 'get', name...       -> {name, config JSON, state, last, ...} of the names
--                                        known, in the order given ({} when none is)
--   ARGV: prefix, 'list'               -> {name, config JSON, state, last, ...}
--   ARGV: prefix, 'due', now, limit    -> {name, config JSON, state, last, ...} earliest first;
--                                        a config or state that is gone is nil
--   ARGV: prefix, 'page', after|'', limit, build '1'|'0'
--                                     -> {next after ('' = no more), name, config JSON,
--                                        state, last, ...} by name after `after`; next after
--                                        is the page's last name, whether its job is whole
--                                        or half-stored (left out) (P.."jn": ZSET of the names,
--                                        all scored 0, read by ZRANGEBYLEX). Until the
--                                        index is built (jobs stored before it), a writer
--                                        (build '1') builds it, once; a reader (a replica, a
--                                        CLI listing) writes nothing and gets {'all', name...}:
--                                        every name, to page itself and read with 'get'
--   ARGV: prefix, 'count', build '1'|'0' -> {jobs, enabled}: HLEN of P.."jobs", less the
--                                        disabled ones (SCARD of P.."joff"): O(1); until
--                                        the index is built (jobs stored before it) they are
--                                        counted from P.."jst", O(jobs), and a writer
--                                        (build '1') builds it, once
-- last: P.."jlast" "<state>|<at>|<task id>" of the job's last finished task ('' = none).
local mode = ARGV[2]
local out = {}
local function add(name, half)
  local cfg = redis.call('HGET', P .. 'jobs', name)
  local st = redis.call('HGET', P .. 'jst', name)
  if (cfg and st) or half then
    out[#out + 1] = name
    out[#out + 1] = cfg
    out[#out + 1] = st
    out[#out + 1] = redis.call('HGET', P .. 'jlast', name) or ''
  end
end
if mode == 'get' then
  for i = 3, #ARGV do add(ARGV[i]) end
elseif mode == 'list' then
  for _, name in ipairs(redis.call('HKEYS', P .. 'jobs')) do add(name) end
elseif mode == 'page' then
  local after, limit = ARGV[3], tonumber(ARGV[4])
  local indexed = redis.call('ZCARD', P .. 'jn') == redis.call('HLEN', P .. 'jobs')
  if not indexed and ARGV[5] == '1' then
    -- jobs stored before the name index existed: a writer builds it (once)
    redis.call('DEL', P .. 'jn')
    for _, name in ipairs(redis.call('HKEYS', P .. 'jobs')) do redis.call('ZADD', P .. 'jn', 0, name) end
    indexed = true
  end
  if indexed then
    local names = redis.call('ZRANGEBYLEX', P .. 'jn', after == '' and '-' or '(' .. after, '+', 'LIMIT', 0, limit + 1)
    -- the cursor is the last name examined, not the last job returned: a page of names
    -- whose jobs are half-stored (left out) must not end the paging
    out[1] = #names > limit and names[limit] or ''
    for k = 1, math.min(#names, limit) do add(names[k]) end
  else
    -- a reader: every name (Lua compares strings by the server's locale, not by bytes as
    -- ZRANGEBYLEX: the caller sorts them)
    out = redis.call('HKEYS', P .. 'jobs')
    table.insert(out, 1, 'all')
  end
elseif mode == 'count' then
  local total = redis.call('HLEN', P .. 'jobs')
  local off
  if redis.call('EXISTS', P .. 'joffb') == 1 then
    off = redis.call('SCARD', P .. 'joff')
  else
    -- not built yet (jobs stored before it): counted from P.."jst"; a writer (ARGV[3] '1')
    -- builds the index, a reader (a replica, a status) writes nothing
    local off_names = {}
    local all = redis.call('HGETALL', P .. 'jst')
    for k = 1, #all, 2 do
      if parse_job_state(all[k + 1]).e == '0' then off_names[#off_names + 1] = all[k] end
    end
    off = #off_names
    if ARGV[3] == '1' then
      redis.call('DEL', P .. 'joff')
      for _, name in ipairs(off_names) do redis.call('SADD', P .. 'joff', name) end
      redis.call('SET', P .. 'joffb', '1')
    end
  end
  out = {total, math.max(0, total - off)}
elseif mode == 'due' then
  local names = redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
  -- a due job whose config or state is gone (a partial loss) comes back with nil for it, to
  -- be put aside: its entry would hold the leader's next due time in the past for ever
  for _, name in ipairs(names) do add(name, true) end
end
return out
