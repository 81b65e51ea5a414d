-- Applies a user's edit or deletion to a message that waits for its turn. A message a runner has
-- already claimed is left alone: its answer is on the way.
-- KEYS[1] inflight:{lane}, KEYS[2] pending:{lane}, KEYS[3] query
-- ARGV[1] job id, ARGV[2] new content, or '' to withdraw the message
-- Returns revised | withdrawn | started (claimed by a runner, or unknown).
local function find(list_key)
  for index, raw in ipairs(redis.call('LRANGE', list_key, 0, -1)) do
    local job = cjson.decode(raw)
    if job['id'] == ARGV[1] then return index - 1, raw, job end
  end
  return nil
end

for _, list_key in ipairs({KEYS[2], KEYS[3]}) do
  local index, raw, job = find(list_key)
  if index then
    if ARGV[2] ~= '' then
      job['content'] = ARGV[2]
      redis.call('LSET', list_key, index, cjson.encode(job))
      return 'revised'
    end
    redis.call('LREM', list_key, 1, raw)
    if list_key == KEYS[3] and redis.call('GET', KEYS[1]) == ARGV[1] then
      advance_lane(KEYS[1], KEYS[2], KEYS[3])
    end
    return 'withdrawn'
  end
end
return 'started'
