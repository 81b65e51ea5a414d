-- Puts a dead-lettered job back in line with fresh attempts, as an operator asked; the lane's order and the
-- one-in-flight rule hold as for a new message.
-- KEYS[1] dead, KEYS[2] optin set, KEYS[3] the job's queue (its model's, or the legacy queue for a job without
-- one), KEYS[4] inflight:{lane}, KEYS[5] pending:{lane}
-- ARGV[1] job id, ARGV[2] guild id that the job must belong to ('' = any), ARGV[3] the job's lane, ARGV[4] the
-- job's model ('' = none) (the caller read the dead list to know them)
-- Returns queued | pending | not_found | not_opted_in | stale (the job's lane or model is not what ARGV says).
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local job = cjson.decode(raw)
  if job['id'] == ARGV[1] and (ARGV[2] == '' or job['guild_id'] == ARGV[2]) then
    local model = job['model']
    if type(model) ~= 'string' then model = '' end
    if lane_of(job) ~= ARGV[3] or model ~= ARGV[4] then
      return 'stale'
    end
    redis.call('LREM', KEYS[1], 1, raw)
    if redis.call('SISMEMBER', KEYS[2], job['user_id']) == 0 then
      return 'not_opted_in'
    end
    job['attempts'] = 0
    job['error'] = nil
    job['failed_at'] = nil
    if redis.call('EXISTS', KEYS[4]) == 0 then
      redis.call('SET', KEYS[4], job['id'])
      redis.call('LPUSH', KEYS[3], cjson.encode(job))
      return 'queued'
    end
    redis.call('RPUSH', KEYS[5], cjson.encode(job))
    return 'pending'
  end
end
return 'not_found'
