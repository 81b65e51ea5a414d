-- Tells the updaters that a runner began on a job (they acknowledge it and show typing), if its user is still in.
-- KEYS[1] response, KEYS[2] optin set
-- ARGV[1] started notice JSON, ARGV[2] user id
-- Returns 1 if the notice went out, else 0.
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 then
  return 0
end
redis.call('LPUSH', KEYS[1], ARGV[1])
return 1
