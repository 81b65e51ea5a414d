-- Adds an entry to one of a server's allow-lists (a channel's allow:<channel>, a role's role:<role>), keeping the
-- count that says whether the server has that list.
-- KEYS[1] server:{guild}
-- ARGV[1] the entry's field, ARGV[2] the list's count field
-- Returns 1 if the entry was added, 0 if it was on the list already.
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return 1
