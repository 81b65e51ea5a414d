-- Records a failed try of a job a runner holds: back onto the queue (behind others), or to the
-- dead list with an apology to the user once it has used up its attempts.
-- KEYS[1] processing:{runner}, KEYS[2] query, KEYS[3] dead, KEYS[4] response, KEYS[5] inflight:{lane},
-- KEYS[6] pending:{lane}, KEYS[7] optin set
-- ARGV[1] job JSON as claimed, ARGV[2] max attempts, ARGV[3] reason, ARGV[4] apology text, ARGV[5] now,
-- ARGV[6] max dead entries kept
-- Returns retry | dead | gone (the job was not held by this runner).
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 'gone'
end
local job = cjson.decode(ARGV[1])
job['attempts'] = (tonumber(job['attempts']) or 0) + 1
if job['attempts'] >= tonumber(ARGV[2]) then
  dead_letter(job, ARGV[3], tonumber(ARGV[5]), KEYS[3], KEYS[4], KEYS[7], ARGV[4], tonumber(ARGV[6]))
  if redis.call('GET', KEYS[5]) == job['id'] then
    advance_lane(KEYS[5], KEYS[6], KEYS[2])
  end
  return 'dead'
end
redis.call('LPUSH', KEYS[2], cjson.encode(job))
return 'retry'
