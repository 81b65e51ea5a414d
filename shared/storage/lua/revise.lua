-- Applies a user's edit or deletion to a message that waits for its turn. A message a runner has
-- already claimed is left alone: its answer is on the way.
-- KEYS[1] inflight:{lane}, KEYS[2] pending:{lane}, KEYS[3] models set, KEYS[4..] the job queues (see
-- declared_queues: the message is looked for in each)
-- ARGV[1] job id, ARGV[2] new content, or '' to withdraw the message, ARGV[3..] the model names (see
-- declared_queues)
-- Returns revised | withdrawn | started (claimed by a runner, or unknown) | STALE_MODELS.
local queues = declared_queues(4, 3)
if not set_within(KEYS[3], queues.of) then
  return STALE_MODELS
end

local function find(list_key)
  for index, raw in ipairs(redis.call('LRANGE', list_key, 0, -1)) do
    local job = cjson.decode(raw)
    if job['id'] == ARGV[1] then return index - 1, raw, job end
  end
  return nil
end

-- Only the lane's current message can be on a queue: look there only when it is this one.
local lists = {KEYS[2]}
if redis.call('GET', KEYS[1]) == ARGV[1] then
  lists[#lists + 1] = queues.legacy
  for _, queue in pairs(queues.of) do lists[#lists + 1] = queue end
end
for _, list_key in ipairs(lists) do
  local index, raw, job = find(list_key)
  if index then
    if ARGV[2] ~= '' then
      job['content'] = ARGV[2]
      redis.call('LSET', list_key, index, cjson.encode(job))
      return 'revised'
    end
    redis.call('LREM', list_key, 1, raw)
    if list_key ~= KEYS[2] then
      advance_lane(KEYS[1], KEYS[2], queues)
    end
    return 'withdrawn'
  end
end
return 'started'
