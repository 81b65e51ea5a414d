-- Removes a server's allow-list (every allow:<channel> field and their count): the bot speaks everywhere again.
-- KEYS[1] server:{guild}
-- ARGV[1] the channel fields' prefix (allow:), ARGV[2] the count's field
-- Returns how many channels were allowed.
local removed = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], field)
    removed = removed + 1
  end
end
redis.call('HDEL', KEYS[1], ARGV[2])
return removed
