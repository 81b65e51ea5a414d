-- Removes a channel from a server's allow-list; the count goes with the last one (then the bot speaks everywhere).
-- KEYS[1] server:{guild}
-- ARGV[1] the channel's field (allow:<channel>), ARGV[2] the count's field
-- Returns {removed (1 or 0), channels still allowed}.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return {0, tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')}
end
local left = redis.call('HINCRBY', KEYS[1], ARGV[2], -1)
if left <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[2])
  left = 0
end
return {1, left}
