--! requires: common jobs
-- jobs.remove: delete a job and its schedule state (its tasks stay).
-- ARGV: prefix, name. Reply: 1 removed, 0 absent.
local name = ARGV[2]
local existed = redis.call('HDEL', P .. 'jobs', name)
redis.call('HDEL', P .. 'jst', name)
redis.call('ZREM', P .. 'due', name)
return existed
