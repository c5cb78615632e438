--! requires: common tasks queues
-- queues.pull: take up to `max` entries of a worker's own queue and mark them running
-- (lib/queues.lua take_entries).
-- ARGV: prefix, worker id, max. Reply: task rows (see task_reply), then {'!bad', id} for each
-- entry whose task record cannot be read (a non-numeric version or timeout): the caller
-- quarantines those; the entries behind them are taken as usual.
-- The op cache keeps the entries taken ("<id>#<n>"); a retried call returns the current rows
-- of those that are still running on this worker with that attempt (lib/queues.lua
-- take_replay).
local w, max = ARGV[2], tonumber(ARGV[3])
local replay = take_replay(w)
if replay then return replay end
local out, ids, bad = take_entries(w, max)
flush_batched()
flush_counts()
if #ids > 0 then
  redis.call('SET', KEYS[1], cjson.encode(ids), 'PX', OP_TTL_MS)
end
for _, id in ipairs(bad) do
  out[#out + 1] = {'!bad', id}  -- for codec: quarantine these
end
return out
