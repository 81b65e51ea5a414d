-- Returns the responses of an updater whose heartbeat has expired to the head of the response
-- list, marked not `fresh`: the next updater reads their posted:{job} record, so a part posted just
-- before the updater died is not posted again.
-- KEYS[1] heartbeat of the updater, KEYS[2] posting:{updater}, KEYS[3] updaters set, KEYS[4] response
-- ARGV[1] updater id
-- Returns -1 when the updater is alive, else the number of responses returned.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local moved = 0
while true do
  local raw = redis.call('LPOP', KEYS[2])  -- newest first: the oldest ends up claimed first
  if not raw then break end
  redis.call('RPUSH', KEYS[4], mark_not_fresh(raw))
  moved = moved + 1
end
redis.call('SREM', KEYS[3], ARGV[1])
return moved
