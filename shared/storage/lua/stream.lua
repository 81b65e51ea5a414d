-- Replaces the partial text of a job a runner is generating, and tells the updaters once: a notice goes onto the
-- response list only when none is waiting for this job, so partials are superseded, never queued.
-- KEYS[1] processing:{runner}, KEYS[2] stream:{job}, KEYS[3] response, KEYS[4] optin set, KEYS[5] posted:{job}
-- ARGV[1] job JSON as claimed, ARGV[2] text so far, ARGV[3] partial notice JSON, ARGV[4] retract notice JSON,
-- ARGV[5] stream TTL (s), ARGV[6] user id
-- Returns ok | gone (the job is no longer this runner's, or its user opted out).
if not redis.call('LPOS', KEYS[1], ARGV[1]) then
  return 'gone'
end
if redis.call('SISMEMBER', KEYS[4], ARGV[6]) == 0 then
  -- Opted out mid-stream: what was posted is deleted (once), and nothing more is kept or shown.
  if redis.call('HGET', KEYS[2], 'retracted') ~= '1' then
    if redis.call('EXISTS', KEYS[5]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
      redis.call('LPUSH', KEYS[3], ARGV[4])
    end
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[2], 'retracted', '1')
    redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
  end
  return 'gone'
end
redis.call('HSET', KEYS[2], 'text', ARGV[2])
if redis.call('HSETNX', KEYS[2], 'noticed', '1') == 1 then
  redis.call('LPUSH', KEYS[3], ARGV[3])
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
return 'ok'
