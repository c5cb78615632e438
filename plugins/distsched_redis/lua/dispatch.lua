--! requires: common tasks
-- tasks.dispatch (fenced): optimistic write of tasks moved to `dispatched` and, for each one
-- written, a push of its attempt id ("<task id>#<dispatches>") onto its worker's queue.
-- ARGV: prefix, fence token, retention, then one task string each.
-- Reply: {'OK', bits} or {'FENCED', current lease}.
local replay = op_replay()
if replay then return replay end
if not fence_ok(ARGV[2]) then return fenced_reply() end
configure_retention(ARGV[3])
prune_expired(100 + 2 * (#ARGV - 3))
local bits, written = cas_tasks(4)
for _, t in ipairs(written) do
  if t.w ~= '' then
    redis.call('RPUSH', P .. 'q:' .. t.w, t.id .. '#' .. t.n)
  end
end
return op_reply({'OK', bits})
