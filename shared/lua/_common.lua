-- Helpers prepended to every script (scripts.py joins them); they use no KEYS of their own.

-- Hands the user's next pending message to the queue, or clears the in-flight mark.
local function advance_user(inflight_key, pending_key, query_key)
  local nxt = redis.call('LPOP', pending_key)
  if nxt then
    redis.call('SET', inflight_key, cjson.decode(nxt)['id'])
    redis.call('LPUSH', query_key, nxt)
  else
    redis.call('DEL', inflight_key)
  end
end

-- Moves a job that has used up its attempts to the dead list and queues an apology for its user.
local function dead_letter(job, reason, now, dead_key, response_key, optin_key, apology, max_dead)
  job['error'] = reason
  job['failed_at'] = now
  redis.call('LPUSH', dead_key, cjson.encode(job))
  redis.call('LTRIM', dead_key, 0, max_dead - 1)
  if redis.call('SISMEMBER', optin_key, job['user_id']) == 1 then
    redis.call('LPUSH', response_key, cjson.encode({
      job_id = job['id'], user_id = job['user_id'], channel_id = job['channel_id'],
      kind = 'apology', content = apology, enqueued_at = job['enqueued_at'], completed_at = now,
    }))
  end
end
