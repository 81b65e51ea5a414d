-- Returns the jobs of a runner whose heartbeat has expired to the head of the queue, counting
-- the try; a job out of attempts is dead-lettered with an apology. Safe to run from every runner
-- at once: the first run empties the list and later ones find nothing.
-- KEYS[1] heartbeat of the runner, KEYS[2] processing:{runner}, KEYS[3] runners set, KEYS[4] query,
-- KEYS[5] dead, KEYS[6] response, KEYS[7] optin set
-- ARGV[1] runner id, ARGV[2] max attempts, ARGV[3] inflight key prefix, ARGV[4] pending key prefix,
-- ARGV[5] now, ARGV[6] apology text, ARGV[7] max dead entries kept
-- Returns -1 when the runner is alive, else {requeued, dead} counts.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local requeued, dead = 0, 0
while true do
  local raw = redis.call('RPOP', KEYS[2])
  if not raw then break end
  local job = cjson.decode(raw)
  job['attempts'] = (tonumber(job['attempts']) or 0) + 1
  if job['attempts'] >= tonumber(ARGV[2]) then
    dead_letter(job, 'runner died', tonumber(ARGV[5]), KEYS[5], KEYS[6], KEYS[7], ARGV[6], tonumber(ARGV[7]))
    local inflight_key = ARGV[3] .. job['user_id']
    if redis.call('GET', inflight_key) == job['id'] then
      advance_user(inflight_key, ARGV[4] .. job['user_id'], KEYS[4])
    end
    dead = dead + 1
  else
    redis.call('RPUSH', KEYS[4], cjson.encode(job))
    requeued = requeued + 1
  end
end
redis.call('SREM', KEYS[3], ARGV[1])
return {requeued, dead}
