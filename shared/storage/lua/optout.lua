-- Erases everything stored about a user: consent, their model choice, the channels they were told the bot does not
-- answer in, their forget count, their conversations (and their turns, with the answers to them, in shared ones),
-- their waiting messages in every lane, and their entries in the shared lists (every job queue, unposted responses,
-- dead letters).
-- KEYS[1] optin set, KEYS[2] conversations:{user}, KEYS[3] inflight:{user}, KEYS[4] pending:{user},
-- KEYS[5] seen:{user}, KEYS[6] rate:{user}, KEYS[7] choice:{user}, KEYS[8] hinted:{user}, KEYS[9] forgets:{user},
-- KEYS[10] response, KEYS[11] dead, KEYS[12] models set, then the job queues (see declared_queues), then for each
-- conversation named after the model names in ARGV: history:{conversation} and, for a shared one, inflight:{lane},
-- pending:{lane}, thread:{id} (see declared_conversations)
-- ARGV[1] user id, ARGV[2] shared conversation id prefix, ARGV[3..] the model names (see declared_queues), then
-- the conversation ids (the set's members, as the caller read them)
-- Returns -1 when the conversations set holds a conversation not declared, or the models set a model (the caller
-- reads both again and retries), 1 if the user had opted in, else 0.
local user = ARGV[1]
local queues, first_conversation_key, first_conversation_arg = declared_queues(13, 3)
local list, by_id = declared_conversations(first_conversation_key, first_conversation_arg, ARGV[2])
if not set_within(KEYS[2], by_id) or not set_within(KEYS[12], queues.of) then
  return -1
end
local was_in = redis.call('SREM', KEYS[1], user)
local shared_lanes = {}
for _, conversation in ipairs(list) do
  if conversation.thread then
    erase_turns_of(conversation.history, user)
    shared_lanes[conversation.id] = conversation
    for _, raw in ipairs(redis.call('LRANGE', conversation.pending, 0, -1)) do
      if cjson.decode(raw)['user_id'] == user then redis.call('LREM', conversation.pending, 0, raw) end
    end
    if redis.call('HGET', conversation.thread, 'starter') == user then
      redis.call('HDEL', conversation.thread, 'starter')
    end
  else
    redis.call('DEL', conversation.history)
  end
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9])
local lists = {{KEYS[10]}, {KEYS[11]}, {queues.legacy, true}}
for _, queue in pairs(queues.of) do lists[#lists + 1] = {queue, true} end
for _, entry in ipairs(lists) do
  local list_key, is_queue = entry[1], entry[2]
  for _, raw in ipairs(redis.call('LRANGE', list_key, 0, -1)) do
    local ok, item = pcall(cjson.decode, raw)
    if ok and type(item) == 'table' and item['user_id'] == user then
      redis.call('LREM', list_key, 0, raw)
      -- A queued message of theirs held its shared lane's turn: the lane moves on to the next speaker.
      local lane = is_queue and shared_lanes[lane_of(item)]
      if lane and redis.call('GET', lane.inflight) == item['id'] then
        advance_lane(lane.inflight, lane.pending, queues)
      end
    end
  end
end
return was_in
