--! requires: common
--! clock: lazy
-- quarantine_since: the leader's look at the quarantine (one per housekeeping pass), one
-- snapshot: the quarantine's sequence number (P.."qseq", common.lua's quarantine_entry) and
-- the entries moved aside after number `since`, newest first, at most `limit`: O(log n).
-- ARGV: prefix, since, limit.
-- Reply: {number, field, entry JSON, field, entry JSON, ...} (an entry whose JSON is gone - a
-- drop cut off half-way - is left out).
local since, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
-- A key of another type or a number that is not one (written by something else) reads as
-- nothing: the next move aside starts them again (common.lua's quarantine_entry).
local raw_seq = redis.pcall('GET', P .. 'qseq')
local seq = type(raw_seq) == 'string' and integer_text(raw_seq) and tonumber(raw_seq) or 0
local out = {seq}
if limit > 0 and seq > since then
  local fields = redis.pcall('ZREVRANGEBYSCORE', P .. 'qs', '+inf', '(' .. since, 'LIMIT', 0, limit)
  if type(fields) ~= 'table' or fields.err then fields = {} end
  for _, field in ipairs(fields) do
    local raw = redis.pcall('HGET', P .. 'qr', field)
    if type(raw) == 'string' then
      out[#out + 1] = field
      out[#out + 1] = raw
    end
  end
end
return out
