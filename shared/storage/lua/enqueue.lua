-- Accepts an opted-in user's message: straight onto the queue when its lane has nothing in flight, else behind
-- the lane's earlier messages, so each lane is answered in order and one message at a time.
-- The job's model joins the models set, so that every script that may later move it onto its queue is given it.
-- KEYS[1] optin set, KEYS[2] inflight:{lane}, KEYS[3] pending:{lane}, KEYS[4] the job's queue (its model's, or the
-- legacy queue for a job without one), KEYS[5] seen:{user}, KEYS[6] rate:{user}, KEYS[7] conversations:{user},
-- KEYS[8] models set, KEYS[9] forgets:{user}, KEYS[10] thread:{id} (shared conversations only)
-- ARGV[1] user id, ARGV[2] job id, ARGV[3] job JSON (stored with the user's forget count, once they have one),
-- ARGV[4] now (s), ARGV[5] most messages of the user waiting in the lane, ARGV[6] seen TTL (s), ARGV[7] messages
-- allowed per minute, ARGV[8] conversation id, ARGV[9] most messages waiting in a shared lane (all speakers),
-- ARGV[10] history TTL (s, 0 = none), ARGV[11] the job's model ('' = none)
-- Returns {status, n}: status is not_opted_in | not_shared | duplicate | rate_limited | full | lane_full |
-- queued | pending; n is how many messages of the lane are ahead of this one (full: how many of the user's
-- wait; lane_full: how many wait in all).
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return {'not_opted_in', 0}
end
local shared = KEYS[10] ~= nil
if shared and redis.call('EXISTS', KEYS[10]) == 0 then
  return {'not_shared', 0}
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
-- The job carries the user's forget count as it is accepted: complete.lua stores nothing of an exchange begun
-- before a later `!forget`. Until their first forget there is no count, and a job without one reads as 0.
local job = ARGV[3]
local forgets = redis.call('GET', KEYS[9])
if forgets then
  local decoded = cjson.decode(job)
  decoded['forgets'] = tonumber(forgets)
  job = cjson.encode(decoded)
end
local status
local waiting = 0
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('LPUSH', KEYS[4], job)
  status = 'queued'
else
  local queued = redis.call('LLEN', KEYS[3])
  local mine = queued
  if shared then
    if queued >= tonumber(ARGV[9]) then
      return {'lane_full', queued}
    end
    mine = 0
    for _, raw in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
      if cjson.decode(raw)['user_id'] == ARGV[1] then mine = mine + 1 end
    end
  end
  if mine >= tonumber(ARGV[5]) then
    return {'full', mine}
  end
  redis.call('RPUSH', KEYS[3], job)
  waiting = queued + 1
  status = 'pending'
end
-- A fixed one-minute window, started by the first accepted message.
if redis.call('INCR', KEYS[6]) == 1 then
  redis.call('EXPIRE', KEYS[6], 60)
end
redis.call('ZADD', KEYS[5], now, ARGV[2])
redis.call('EXPIRE', KEYS[5], math.ceil(seen_ttl))
local ttl = tonumber(ARGV[10])
redis.call('SADD', KEYS[7], ARGV[8])
expire_or_persist(KEYS[7], ttl)
if shared then expire_or_persist(KEYS[10], ttl) end
if ARGV[11] ~= '' then redis.call('SADD', KEYS[8], ARGV[11]) end
return {status, waiting}
