--! requires: common tasks
-- tasks.cancel (not fenced: any caller may cancel): optimistic write of one task that
-- Task.cancel moved to `cancelled`, only while the stored task is not final and its version
-- is the expected one. reindex() keeps the indexes, the worker's load and the counts right;
-- write_task records the attempt it ends (a dispatched or running one).
-- ARGV: prefix, retention, task string. Reply: {'OK', '1' written | '0' not}.
local replay = op_replay()
if replay then return replay end
configure_retention(ARGV[2])
local t = parse_task(ARGV[3])
local cur = redis.call('HMGET', task_key(t.id), 's')
if t.s ~= 'cancelled' or not cur[1] or TERMINAL[cur[1]] then
  return op_reply({'OK', '0'})
end
local written = cas_task(ARGV[3])
notify()
return op_reply({'OK', written and '1' or '0'})
