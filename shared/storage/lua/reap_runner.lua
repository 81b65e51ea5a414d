-- Returns the jobs of a runner whose heartbeat has expired to the head of their models' queues, counting
-- the try; a job out of attempts is dead-lettered with an apology. Safe to run from every runner
-- at once: the first run empties the list and later ones find nothing.
-- KEYS[1] heartbeat of the runner, KEYS[2] processing:{runner}, KEYS[3] runners set, KEYS[4] dead,
-- KEYS[5] response, KEYS[6] optin set, KEYS[7] models set, then the job queues (see declared_queues), then for
-- each lane named after the model names in ARGV: inflight:{lane}, pending:{lane} (the caller read the runner's list
-- to know them)
-- ARGV[1] runner id, ARGV[2] max attempts, ARGV[3] now, ARGV[4] apology text, ARGV[5] max dead entries kept,
-- ARGV[6..] the model names (see declared_queues), then the lane ids
-- Returns -1 when the runner is alive, -2 when a job's lane was not declared (the caller reads the list again),
-- STALE_MODELS, else {requeued, dead} counts.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local queues, first_lane_key, first_lane_arg = declared_queues(8, 6)
if not set_within(KEYS[7], queues.of) then
  return STALE_MODELS
end
local lanes = {}
for i = first_lane_arg, #ARGV do
  local k = first_lane_key + 2 * (i - first_lane_arg)
  lanes[ARGV[i]] = {KEYS[k], KEYS[k + 1]}
end
for _, raw in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if not lanes[lane_of(cjson.decode(raw))] then return -2 end
end
local requeued, dead = 0, 0
while true do
  local raw = redis.call('RPOP', KEYS[2])
  if not raw then break end
  local job = cjson.decode(raw)
  job['attempts'] = (tonumber(job['attempts']) or 0) + 1
  if job['attempts'] >= tonumber(ARGV[2]) then
    dead_letter(job, 'runner died', tonumber(ARGV[3]), KEYS[4], KEYS[5], KEYS[6], ARGV[4], tonumber(ARGV[5]))
    local lane = lanes[lane_of(job)]
    if redis.call('GET', lane[1]) == job['id'] then
      advance_lane(lane[1], lane[2], queues)
    end
    dead = dead + 1
  else
    redis.call('RPUSH', queue_of(queues, job), cjson.encode(job))
    requeued = requeued + 1
  end
end
redis.call('SREM', KEYS[3], ARGV[1])
return {requeued, dead}
