-- Adds a channel to a server's allow-list, keeping the count that says whether the server has one.
-- KEYS[1] server:{guild}
-- ARGV[1] the channel's field (allow:<channel>), ARGV[2] the count's field
-- Returns 1 if the channel was added, 0 if it was already allowed.
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return 1
