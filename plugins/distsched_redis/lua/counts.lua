--! requires: common tasks
-- tasks.counts: number of tasks per state; finished tasks past their retention are not
-- counted (some index entries are pruned first; the leader's housekeeping prunes the rest).
-- ARGV: prefix, retention, prune '1'|'0' (a reader - a replica, a CLI status - writes
-- nothing: what it finds expired is left to the housekeeping, and not counted either way).
-- Reply: {state, count, ...} for the states that have tasks.
configure_retention(ARGV[2])
if ARGV[3] == '1' then prune_expired(10000) end
local out = {}
local live = redis.call('HGETALL', P .. 'cnt')
for k = 1, #live, 2 do
  -- Python quarantines what is not an integer
  if not integer_text(live[k + 1]) or tonumber(live[k + 1]) > 0 then
    out[#out + 1] = live[k]
    out[#out + 1] = live[k + 1]
  end
end
for _, s in ipairs(TERMINAL_STATES) do
  -- only the retained ones: entries whose expiry passed are not counted, pruned or not
  local c = redis.call('ZCOUNT', P .. 'x:' .. s, '(' .. NOW_S, '+inf')
  if c > 0 then
    out[#out + 1] = s
    out[#out + 1] = tostring(c)
  end
end
return out
