-- Gives back, untried, the work a worker holds as it shuts down: to the head of the list it came
-- from, so the next worker takes it first.
-- KEYS[1] the worker's own list, KEYS[2] the list it claims from, KEYS[3] heartbeat, KEYS[4] workers set
-- ARGV[1] worker id, ARGV[2] '1' to mark each item not `fresh` (responses: some parts may be posted already)
-- Returns the number of items given back.
local moved = 0
while true do
  local raw = redis.call('LPOP', KEYS[1])  -- newest first: the oldest ends up claimed first
  if not raw then break end
  redis.call('RPUSH', KEYS[2], ARGV[2] == '1' and mark_not_fresh(raw) or raw)
  moved = moved + 1
end
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return moved
