-- Gives back, untried, the jobs a runner holds as it shuts down: each to the head of its model's queue, so the
-- next runner of that model takes it first.
-- KEYS[1] processing:{runner}, KEYS[2] heartbeat, KEYS[3] runners set, KEYS[4] models set, KEYS[5..] the job
-- queues (see declared_queues)
-- ARGV[1] runner id, ARGV[2..] the model names (see declared_queues)
-- Returns the number of jobs given back, or STALE_MODELS.
local queues = declared_queues(5, 2)
if not set_within(KEYS[4], queues.of) then
  return STALE_MODELS
end
local moved = 0
while true do
  local raw = redis.call('LPOP', KEYS[1])  -- newest first: the oldest ends up claimed first
  if not raw then break end
  redis.call('RPUSH', queue_of(queues, cjson.decode(raw)), raw)
  moved = moved + 1
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return moved
