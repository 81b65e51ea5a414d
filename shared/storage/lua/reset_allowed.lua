-- Removes one of a server's allow-lists (every field with its prefix, and their count).
-- KEYS[1] server:{guild}
-- ARGV[1] the entries' field prefix (allow: for channels, role: for roles), ARGV[2] the list's count field
-- Returns how many entries were on it.
local removed = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], field)
    removed = removed + 1
  end
end
redis.call('HDEL', KEYS[1], ARGV[2])
return removed
