--! requires: common tasks
-- queues.report: append results (JSON) to the result list, cap the result list, and wake the
-- leader. With settling asked for (a retention given: the worker does not sign its results),
-- each success of the reporting worker's current attempt whose dispatch the leader did not
-- sign is settled right here, exactly as settle.lua would (lib/tasks.lua settle_success), and
-- leaves a summary row in P.."fin" instead of a result: the leader's next settle takes the
-- rows (counted as settled, with their TaskFinished events). Everything else - failures,
-- timeouts, stale or signed successes, anything malformed - goes to the result list as
-- without settling. The leader is woken when the result list got something, when it said
-- that ready tasks wait for room (P.."room", Python's waiting_for_room: a freed slot may take
-- one), when the summary rows pile up (FIN_WAKE), or for an empty report; a report that only
-- settled successes otherwise wakes nobody (the leader's next pass, at most MAX_IDLE away,
-- takes the rows).
-- ARGV: prefix, worker id, results cap, retention ('' = do not settle), then one result JSON
-- each (at most a few thousand).
local replay = op_replay()
if replay then return replay end
local worker, cap = ARGV[2], tonumber(ARGV[3])
local settle = ARGV[4] ~= ''
local FIN_WAKE = 1000
local pushed, fin = {}, {}
if settle then configure_retention(ARGV[4]) end
for i = 5, #ARGV do
  local entry = ARGV[i]
  local done = false
  if settle then
    local ok, r = pcall(cjson.decode, entry)
    if ok and judgeable(r) and r.worker_id == worker then
      local how, row = settle_success(entry, r, true)
      if how == 'settled' then
        fin[#fin + 1] = row
        done = true
      end
    end
  end
  if not done then pushed[#pushed + 1] = entry end
end
local len
if #pushed > 0 then
  len = redis.call('RPUSH', P .. 'results', unpack(pushed))
  if len > cap then
    redis.call('LTRIM', P .. 'results', -cap, -1)
  end
end
local wake = #pushed > 0 or #fin == 0
if #fin > 0 then
  local flen = redis.call('RPUSH', P .. 'fin', unpack(fin))
  if flen > cap then
    redis.call('LTRIM', P .. 'fin', -cap, -1)  -- no leader for that long: the oldest rows go
  end
  wake = wake or flen >= FIN_WAKE or redis.call('EXISTS', P .. 'room') == 1
end
if wake then notify() end
return op_reply(len or 0)
