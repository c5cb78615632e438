--! requires: common jobs
-- Job reads, each one consistent snapshot:
--   ARGV: prefix, 'get', name          -> {config JSON, state} or {} when unknown
--   ARGV: prefix, 'list'               -> {name, config JSON, state, ...}
--   ARGV: prefix, 'due', now, limit    -> {name, config JSON, state, ...} earliest first
local mode = ARGV[2]
local out = {}
local function add(name)
  local cfg = redis.call('HGET', P .. 'jobs', name)
  local st = redis.call('HGET', P .. 'jst', name)
  if cfg and st then
    out[#out + 1] = name
    out[#out + 1] = cfg
    out[#out + 1] = st
  end
end
if mode == 'get' then
  add(ARGV[3])
elseif mode == 'list' then
  for _, name in ipairs(redis.call('HKEYS', P .. 'jobs')) do add(name) end
elseif mode == 'due' then
  local names = redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
  for _, name in ipairs(names) do add(name) end
end
return out
