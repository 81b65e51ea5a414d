-- Moves up to N jobs that are already waiting into a runner's list, oldest first, in one round trip.
-- KEYS[1] query, KEYS[2] processing:{runner}
-- ARGV[1] most jobs to move
-- Returns the payloads moved.
local moved = {}
for _ = 1, tonumber(ARGV[1]) do
  local raw = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not raw then break end
  moved[#moved + 1] = raw
end
return moved
