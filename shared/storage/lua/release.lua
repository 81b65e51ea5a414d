-- Gives back the responses an updater holds as it shuts down: to the head of the response list, marked not
-- `fresh` (some of their parts may be posted already), so the next updater takes them first. (Runners give their
-- jobs back with release_runner.lua, each to its model's queue.)
-- KEYS[1] posting:{updater}, KEYS[2] response, KEYS[3] heartbeat, KEYS[4] updaters set
-- ARGV[1] updater id
-- Returns the number of responses given back.
local moved = 0
while true do
  local raw = redis.call('LPOP', KEYS[1])  -- newest first: the oldest ends up claimed first
  if not raw then break end
  redis.call('RPUSH', KEYS[2], mark_not_fresh(raw))
  moved = moved + 1
end
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return moved
