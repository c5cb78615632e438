--! requires: common tasks
-- tasks.submit: store new tasks, idempotent by id (an existing id is left unchanged).
-- ARGV: prefix, retention, then one task string each (see parse_task).
-- Reply: {'OK', bits} - '1' created, '0' the id already existed.
local replay = op_replay()
if replay then return replay end
configure_retention(ARGV[2])
local bits = {}
for i = 3, #ARGV do
  bits[#bits + 1] = create_task(ARGV[i]) and '1' or '0'
end
notify()
return op_reply({'OK', table.concat(bits)})
