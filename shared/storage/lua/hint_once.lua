-- Decides whether an opted-in user who addressed the bot where it does not answer is told so: once per channel an
-- interval, remembered under the user's own key (which !optout deletes); nothing is stored for anyone else.
-- KEYS[1] optin set, KEYS[2] hinted:{user}, KEYS[3] server:{guild} (absent in a DM)
-- ARGV[1] user id, ARGV[2] channel id, ARGV[3] now (s), ARGV[4] interval (s), ARGV[5] the allow fields' prefix
-- Returns false when no hint is due (not opted in, or told within the interval), else the list of the server's
-- allowed channel ids (empty in a DM).
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return false
end
local now, interval = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - interval)
if redis.call('ZSCORE', KEYS[2], ARGV[2]) then
  return false
end
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('EXPIRE', KEYS[2], math.ceil(interval))
local allowed = {}
if KEYS[3] then
  local prefix = ARGV[5]
  for _, field in ipairs(redis.call('HKEYS', KEYS[3])) do
    if string.sub(field, 1, #prefix) == prefix then
      allowed[#allowed + 1] = string.sub(field, #prefix + 1)
    end
  end
end
return allowed
