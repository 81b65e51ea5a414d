-- Registers a thread the bot opened as a shared conversation, started by an opted-in user.
-- KEYS[1] thread:{id}, KEYS[2] conversations:{starter}, KEYS[3] optin set
-- ARGV[1] guild id, ARGV[2] parent channel id, ARGV[3] starter's user id, ARGV[4] now, ARGV[5] TTL (s, 0 = none),
-- ARGV[6] the thread's conversation id
-- Returns 1 when registered, 0 when the starter is not opted in (nothing is stored).
if redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'guild', ARGV[1], 'parent', ARGV[2], 'starter', ARGV[3], 'opened_at', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[6])
local ttl = tonumber(ARGV[5])
expire_or_persist(KEYS[1], ttl)
expire_or_persist(KEYS[2], ttl)
return 1
