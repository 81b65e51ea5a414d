-- Extends or releases a posting lock, only if this updater still holds it.
-- KEYS[1] posting-lock:{job}
-- ARGV[1] this updater's id, ARGV[2] 'extend' or 'release', ARGV[3] TTL (ms) for extend
-- Returns 1 if this updater held it, else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'release' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return 1
