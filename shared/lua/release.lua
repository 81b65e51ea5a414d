-- Gives back, untried, the work a worker holds as it shuts down: to the head of the list it came
-- from, so the next worker takes it first.
-- KEYS[1] the worker's own list, KEYS[2] the list it claims from, KEYS[3] heartbeat, KEYS[4] workers set
-- ARGV[1] worker id
-- Returns the number of items given back.
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'RIGHT') do
  moved = moved + 1
end
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return moved
