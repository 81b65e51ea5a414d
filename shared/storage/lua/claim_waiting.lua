-- Moves up to N jobs that are already waiting into a runner's list, oldest first, in one round trip: its model's
-- first, then jobs of the legacy queue (queued by a version before there were several models, naming none).
-- KEYS[1] query:{model}, KEYS[2] processing:{runner}, KEYS[3] the legacy queue
-- ARGV[1] most jobs to move
-- Returns the payloads moved.
local moved = {}
for _, queue in ipairs({KEYS[1], KEYS[3]}) do
  while #moved < tonumber(ARGV[1]) do
    local raw = redis.call('LMOVE', queue, KEYS[2], 'RIGHT', 'LEFT')
    if not raw then break end
    moved[#moved + 1] = raw
  end
end
return moved
