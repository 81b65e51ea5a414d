-- Records a failed try of a job a runner holds: back onto its model's queue (behind others), or to the
-- dead list with an apology to the user once it has used up its attempts.
-- KEYS[1] processing:{runner}, KEYS[2] dead, KEYS[3] response, KEYS[4] inflight:{lane}, KEYS[5] pending:{lane},
-- KEYS[6] optin set, KEYS[7] models set, KEYS[8..] the job queues (see declared_queues)
-- ARGV[1] job JSON as claimed, ARGV[2] max attempts, ARGV[3] reason, ARGV[4] apology text, ARGV[5] now,
-- ARGV[6] max dead entries kept, ARGV[7..] the model names (see declared_queues)
-- Returns retry | dead | gone (the job was not held by this runner) | STALE_MODELS.
local queues = declared_queues(8, 7)
if not set_within(KEYS[7], queues.of) then
  return STALE_MODELS
end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 'gone'
end
local job = cjson.decode(ARGV[1])
job['attempts'] = (tonumber(job['attempts']) or 0) + 1
if job['attempts'] >= tonumber(ARGV[2]) then
  dead_letter(job, ARGV[3], tonumber(ARGV[5]), KEYS[2], KEYS[3], KEYS[6], ARGV[4], tonumber(ARGV[6]))
  if redis.call('GET', KEYS[4]) == job['id'] then
    advance_lane(KEYS[4], KEYS[5], queues)
  end
  return 'dead'
end
redis.call('LPUSH', queue_of(queues, job), cjson.encode(job))
return 'retry'
