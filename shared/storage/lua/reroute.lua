-- Moves a user's messages that wait, in their own lane, for a model nobody serves now to the model they just chose:
-- the lane's current message from that model's queue to the back of the chosen one's, the later ones where they are.
-- Messages of shared threads stay: there the choice of whoever opened the thread holds.
-- KEYS[1] inflight:{user}, KEYS[2] pending:{user}, KEYS[3] query:{chosen model}, KEYS[4] models set, KEYS[5..] the
-- job queues (see declared_queues)
-- ARGV[1] the chosen model, ARGV[2..] the model names (see declared_queues), then the names of the models nobody
-- serves now (the caller read the live runners just before)
-- Returns how many messages moved, or STALE_MODELS.
local queues, _, first_unserved = declared_queues(5, 2)
if not set_within(KEYS[4], queues.of) then
  return STALE_MODELS
end
local unserved = {}
for i = first_unserved, #ARGV do unserved[ARGV[i]] = true end

-- The job with its new model, and no mark of having been told about the old one.
local function moved_to_choice(job)
  job['model'] = ARGV[1]
  job['unavailable_told'] = nil
  return cjson.encode(job)
end

local moved = 0
local current = redis.call('GET', KEYS[1])
if current then
  for model, queue in pairs(queues.of) do
    if unserved[model] then
      for _, raw in ipairs(redis.call('LRANGE', queue, 0, -1)) do
        local job = cjson.decode(raw)
        if job['id'] == current then
          redis.call('LREM', queue, 1, raw)
          redis.call('LPUSH', KEYS[3], moved_to_choice(job))
          moved = moved + 1
          break
        end
      end
    end
  end
end
for index, raw in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local job = cjson.decode(raw)
  if type(job['model']) == 'string' and unserved[job['model']] then
    redis.call('LSET', KEYS[2], index - 1, moved_to_choice(job))
    moved = moved + 1
  end
end
return moved
