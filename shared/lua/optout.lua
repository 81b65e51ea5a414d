-- Erases everything stored about a user: consent, history, queued and pending messages, and
-- their entries in the shared lists (queue, unposted responses, dead letters).
-- KEYS[1] optin set, KEYS[2] history, KEYS[3] inflight, KEYS[4] pending, KEYS[5] seen, KEYS[6] rate,
-- KEYS[7] query, KEYS[8] response, KEYS[9] dead
-- ARGV[1] user id
-- Returns 1 if the user had opted in, else 0.
local was_in = redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
for i = 7, 9 do
  for _, raw in ipairs(redis.call('LRANGE', KEYS[i], 0, -1)) do
    local ok, item = pcall(cjson.decode, raw)
    if ok and type(item) == 'table' and item['user_id'] == ARGV[1] then
      redis.call('LREM', KEYS[i], 0, raw)
    end
  end
end
return was_in
