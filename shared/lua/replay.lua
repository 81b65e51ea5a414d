-- Puts a dead-lettered job back in line with fresh attempts, as an operator asked; the user's
-- order and the one-in-flight rule hold as for a new message.
-- KEYS[1] dead, KEYS[2] optin set, KEYS[3] query, ARGV[1] job id, ARGV[2] inflight key prefix,
-- ARGV[3] pending key prefix, ARGV[4] guild id that the job must belong to ('' = any)
-- Returns queued | pending | not_found | not_opted_in.
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local job = cjson.decode(raw)
  if job['id'] == ARGV[1] and (ARGV[4] == '' or job['guild_id'] == ARGV[4]) then
    redis.call('LREM', KEYS[1], 1, raw)
    if redis.call('SISMEMBER', KEYS[2], job['user_id']) == 0 then
      return 'not_opted_in'
    end
    job['attempts'] = 0
    job['error'] = nil
    job['failed_at'] = nil
    local inflight_key = ARGV[2] .. job['user_id']
    if redis.call('EXISTS', inflight_key) == 0 then
      redis.call('SET', inflight_key, job['id'])
      redis.call('LPUSH', KEYS[3], cjson.encode(job))
      return 'queued'
    end
    redis.call('RPUSH', ARGV[3] .. job['user_id'], cjson.encode(job))
    return 'pending'
  end
end
return 'not_found'
