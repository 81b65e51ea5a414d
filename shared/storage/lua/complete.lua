-- Finishes a job a runner holds: the answer goes out, both turns join the conversation's history, and the
-- lane's next message (if any) moves onto its model's queue. Nothing happens if the job is no longer the runner's
-- (it was requeued as the runner looked dead), so no job is answered twice. A job accepted before its user's latest
-- `!forget` is answered, but nothing of it is stored.
-- KEYS[1] processing:{runner}, KEYS[2] inflight:{lane}, KEYS[3] pending:{lane}, KEYS[4] response,
-- KEYS[5] history:{conversation}, KEYS[6] optin set, KEYS[7] conversations:{user}, KEYS[8] stream:{job},
-- KEYS[9] posted:{job}, KEYS[10] posting-lock:{job}, KEYS[11] models set, KEYS[12] forgets:{user}, KEYS[13..] the
-- job queues (see declared_queues)
-- ARGV[1] job JSON as claimed, ARGV[2] job id, ARGV[3] user id, ARGV[4] response JSON (marked fresh),
-- ARGV[5] user turn JSON, ARGV[6] assistant turn JSON, ARGV[7] max turns kept, ARGV[8] history TTL (s, 0 = none),
-- ARGV[9] now, ARGV[10] conversation id, ARGV[11] retract notice JSON, ARGV[12] the user's forget count when the
-- job was accepted (enqueue.lua; 0 when it carries none), ARGV[13..] the model names (see declared_queues)
-- Returns 1 when completed, 0 when the job was not held by this runner, or STALE_MODELS.
local queues = declared_queues(13, 13)
if not set_within(KEYS[11], queues.of) then
  return STALE_MODELS
end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
-- Whether something of it may be on Discord already (a partial was shown, or is being): then the final text
-- goes through the posting lock and edits those messages.
local shown = redis.call('EXISTS', KEYS[8], KEYS[9], KEYS[10]) > 0
redis.call('DEL', KEYS[8])
-- A user who opted out while the job ran gets no answer and nothing stored; what was shown is deleted.
if redis.call('SISMEMBER', KEYS[6], ARGV[3]) == 0 then
  if shown then redis.call('LPUSH', KEYS[4], ARGV[11]) end
else
  local response = ARGV[4]
  if shown then
    local decoded = cjson.decode(response)
    decoded['fresh'] = false
    response = cjson.encode(decoded)
  end
  redis.call('LPUSH', KEYS[4], response)
  local max_turns = tonumber(ARGV[7])
  -- The user said `!forget` since the job was accepted: its exchange began before, so none of it is kept.
  local forgotten = tonumber(redis.call('GET', KEYS[12]) or '0') ~= tonumber(ARGV[12])
  if max_turns >= 2 and not forgotten then
    local raw = redis.call('GET', KEYS[5])
    local turns = {}
    if raw then turns = cjson.decode(raw) end
    turns[#turns + 1] = cjson.decode(ARGV[5])
    turns[#turns + 1] = cjson.decode(ARGV[6])
    local keep_from = 1
    -- Drop whole exchanges from the oldest end so the history always starts with a user turn.
    while #turns - keep_from + 1 > max_turns do keep_from = keep_from + 2 end
    local kept = {}
    for i = keep_from, #turns do kept[#kept + 1] = turns[i] end
    local ttl = tonumber(ARGV[8])
    if ttl > 0 then
      redis.call('SET', KEYS[5], cjson.encode(kept), 'EX', ttl)
    else
      redis.call('SET', KEYS[5], cjson.encode(kept))
    end
    redis.call('SADD', KEYS[7], ARGV[10])
    expire_or_persist(KEYS[7], ttl)
  end
end
if redis.call('GET', KEYS[2]) == ARGV[2] then
  advance_lane(KEYS[2], KEYS[3], queues)
end
return 1
