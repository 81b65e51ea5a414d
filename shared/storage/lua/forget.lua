-- Erases a user's conversations: their own histories, and their turns (with the answers to them) in shared
-- ones, where everybody else's turns stay. Waiting messages and consent are kept; the user's forget count goes up,
-- so that nothing of an exchange begun before (being answered, or waiting) is stored after (complete.lua).
-- KEYS[1] conversations:{user}, KEYS[2] forgets:{user}, KEYS[3] optin set, then for each conversation of
-- ARGV[3..]: history:{conversation} and, for a shared one, inflight:{lane}, pending:{lane}, thread:{id} (see
-- declared_conversations)
-- ARGV[1] user id, ARGV[2] shared conversation id prefix, ARGV[3..] the conversation ids (the set's members,
-- as the caller read them)
-- Returns -1 when the set holds a conversation not declared (the caller retries), else how many conversations
-- held turns of the user.
local list, by_id = declared_conversations(4, 3, ARGV[2])
if not set_within(KEYS[1], by_id) then
  return -1
end
-- Nothing is stored about someone not opted in, not even a count.
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then
  redis.call('INCR', KEYS[2])
end
local erased = 0
for _, conversation in ipairs(list) do
  if conversation.thread then
    if erase_turns_of(conversation.history, ARGV[1]) > 0 then erased = erased + 1 end
  else
    erased = erased + redis.call('DEL', conversation.history)
    redis.call('SREM', KEYS[1], conversation.id)
  end
end
return erased
