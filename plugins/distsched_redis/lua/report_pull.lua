--! requires: common tasks queues
-- queues.report_and_pull: a worker's report (as report.lua) and then its next take (as
-- pull.lua, never blocking) in one atomic step and one round trip.
-- ARGV: prefix, worker id, max, results cap, retention ('' = do not settle), then one result
-- JSON each. Reply: as pull.lua's.
-- KEYS[1] is the take's op key, written on every call (the entries taken, maybe none): a
-- call retried with the same key (a lost reply) reports nothing again and returns what
-- pull.lua would return for that key; a later pull.lua with the key does the same.
local w, max = ARGV[2], tonumber(ARGV[3])
local replay = take_replay(w)
if replay then return replay end
report_results(w, tonumber(ARGV[4]), ARGV[5], 6)
local out, ids, bad = take_entries(w, max)
flush_batched()
flush_counts()
flush_finished()
redis.call('SET', KEYS[1], cjson.encode(ids), 'PX', OP_TTL_MS)
for _, id in ipairs(bad) do
  out[#out + 1] = {'!bad', id}  -- for codec: quarantine these
end
return out
