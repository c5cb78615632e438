--! requires: common jobs
-- jobs.remove: delete a job, its schedule state and last outcome (its tasks stay).
-- ARGV: prefix, name. Reply: 1 removed, 0 absent.
local name = ARGV[2]
local existed = redis.call('HDEL', P .. 'jobs', name)
redis.call('HDEL', P .. 'jst', name)
redis.call('ZREM', P .. 'due', name)
redis.call('ZREM', P .. 'jn', name)
redis.call('SREM', P .. 'joff', name)
redis.call('HDEL', P .. 'jlast', name)
return existed
