-- Removes an entry from one of a server's allow-lists; the count goes with the last one (then the list is off: the
-- bot speaks in every channel, or answers every role).
-- KEYS[1] server:{guild}
-- ARGV[1] the entry's field (allow:<channel> or role:<role>), ARGV[2] the list's count field
-- Returns {removed (1 or 0), entries still on the list}.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return {0, tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')}
end
local left = redis.call('HINCRBY', KEYS[1], ARGV[2], -1)
if left <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[2])
  left = 0
end
return {1, left}
