-- Takes the lock under which one updater at a time posts or edits a job's messages, and reads, in the same step,
-- what it needs: so a partial never lands after the final text, and the newest partial is the one shown.
-- KEYS[1] posting-lock:{job}, KEYS[2] posted:{job}, KEYS[3] optin set, KEYS[4] stream:{job}
-- ARGV[1] this updater's id, ARGV[2] lock TTL (ms), ARGV[3] user id
-- Returns {0} when another updater holds it (a waiting partial is then noticed afresh at the runner's next
-- update), else {1, 1 if opted in else 0, {posted record, flat}, partial text or ''}.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  redis.call('HDEL', KEYS[4], 'noticed')
  return {0}
end
redis.call('HDEL', KEYS[4], 'noticed')
return {
  1,
  redis.call('SISMEMBER', KEYS[3], ARGV[3]),
  redis.call('HGETALL', KEYS[2]),
  redis.call('HGET', KEYS[4], 'text') or '',
}
