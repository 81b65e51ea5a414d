-- Accepts a user's message: straight onto the queue when the user has nothing in flight,
-- else behind their earlier messages, so each user is served in order and one at a time.
-- KEYS[1] optin set, KEYS[2] inflight:{user}, KEYS[3] pending:{user}, KEYS[4] query, KEYS[5] seen:{user},
-- KEYS[6] rate:{user}
-- ARGV[1] user id, ARGV[2] job id, ARGV[3] job JSON, ARGV[4] now (s), ARGV[5] max pending, ARGV[6] seen TTL (s),
-- ARGV[7] messages allowed per minute
-- Returns {status, n}: status is not_opted_in | duplicate | rate_limited | full | queued | pending;
-- n is how many of the user's messages are ahead of this one (for full: how many wait).
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return {'not_opted_in', 0}
end
local now = tonumber(ARGV[4])
local seen_ttl = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - seen_ttl)
if redis.call('ZSCORE', KEYS[5], ARGV[2]) then
  return {'duplicate', 0}
end
local sent = tonumber(redis.call('GET', KEYS[6]) or '0')
if sent >= tonumber(ARGV[7]) then
  return {'rate_limited', sent}
end
local status
local waiting = 0
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('LPUSH', KEYS[4], ARGV[3])
  status = 'queued'
else
  waiting = redis.call('LLEN', KEYS[3]) + 1
  if waiting > tonumber(ARGV[5]) then
    return {'full', waiting - 1}
  end
  redis.call('RPUSH', KEYS[3], ARGV[3])
  status = 'pending'
end
-- A fixed one-minute window, started by the first accepted message.
if redis.call('INCR', KEYS[6]) == 1 then
  redis.call('EXPIRE', KEYS[6], 60)
end
redis.call('ZADD', KEYS[5], now, ARGV[2])
redis.call('EXPIRE', KEYS[5], math.ceil(seen_ttl))
return {status, waiting}
