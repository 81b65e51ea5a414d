-- Returns the jobs of a runner whose heartbeat has expired to the head of the queue, counting
-- the try; a job out of attempts is dead-lettered with an apology. Safe to run from every runner
-- at once: the first run empties the list and later ones find nothing.
-- KEYS[1] heartbeat of the runner, KEYS[2] processing:{runner}, KEYS[3] runners set, KEYS[4] query,
-- KEYS[5] dead, KEYS[6] response, KEYS[7] optin set, then for each lane of ARGV[6..]: inflight:{lane},
-- pending:{lane} (the caller read the runner's list to know them)
-- ARGV[1] runner id, ARGV[2] max attempts, ARGV[3] now, ARGV[4] apology text, ARGV[5] max dead entries kept,
-- ARGV[6..] lane ids
-- Returns -1 when the runner is alive, -2 when a job's lane was not declared (the caller reads the list again),
-- else {requeued, dead} counts.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local lanes = {}
for i = 6, #ARGV do
  lanes[ARGV[i]] = {KEYS[8 + 2 * (i - 6)], KEYS[9 + 2 * (i - 6)]}
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
    dead_letter(job, 'runner died', tonumber(ARGV[3]), KEYS[5], KEYS[6], KEYS[7], ARGV[4], tonumber(ARGV[5]))
    local lane = lanes[lane_of(job)]
    if redis.call('GET', lane[1]) == job['id'] then
      advance_lane(lane[1], lane[2], KEYS[4])
    end
    dead = dead + 1
  else
    redis.call('RPUSH', KEYS[4], cjson.encode(job))
    requeued = requeued + 1
  end
end
redis.call('SREM', KEYS[3], ARGV[1])
return {requeued, dead}
