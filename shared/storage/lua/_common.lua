-- Helpers prepended to every script (scripts.py joins them); they use no keys but those handed to them.

-- The lane a job waits in; shared/queues/conversation_ids.py job_lane() reads the same field with the same fallback.
local function lane_of(job)
  return job['lane'] or job['user_id']
end

-- Moves a job that has used up its attempts to the dead list and queues an apology for its user (through its
-- interaction, for an /ask).
local function dead_letter(job, reason, now, dead_key, response_key, optin_key, apology, max_dead)
  job['error'] = reason
  job['failed_at'] = now
  redis.call('LPUSH', dead_key, cjson.encode(job))
  redis.call('LTRIM', dead_key, 0, max_dead - 1)
  if redis.call('SISMEMBER', optin_key, job['user_id']) == 1 then
    redis.call('LPUSH', response_key, cjson.encode({
      job_id = job['id'], user_id = job['user_id'], channel_id = job['channel_id'], lane = lane_of(job),
      kind = 'apology', content = apology, enqueued_at = job['enqueued_at'], completed_at = now,
      interaction = job['interaction'],
    }))
  end
end

-- Keeps a key of the user's alive as long as the histories it points to (ttl 0: forever).
local function expire_or_persist(key, ttl)
  if ttl > 0 then redis.call('EXPIRE', key, ttl) else redis.call('PERSIST', key) end
end

-- True when every member of the set at set_key is a key of `declared` (a table used as a set): a script that
-- touches the keys a set names gets them in KEYS, read by the caller just before; if the set changed since,
-- the caller reads it again and retries.
local function set_within(set_key, declared)
  for _, member in ipairs(redis.call('SMEMBERS', set_key)) do
    if not declared[member] then return false end
  end
  return true
end

-- What a script that may move a job onto a queue returns, before changing anything, when the models set holds a
-- model whose queue it was not given: the caller reads the set again and retries.
local STALE_MODELS = 'stale_models'

-- The job queues a script was given: ARGV[first_arg] says how many model names follow it in ARGV; KEYS[first_key]
-- is the legacy queue (jobs queued without a model, by versions before there were several) and each model's queue
-- follows it, in the names' order. Returns the queues and the positions in KEYS and ARGV of what comes after them.
local function declared_queues(first_key, first_arg)
  local queues = {legacy = KEYS[first_key], of = {}}
  local count = tonumber(ARGV[first_arg])
  for i = 1, count do
    queues.of[ARGV[first_arg + i]] = KEYS[first_key + i]
  end
  return queues, first_key + count + 1, first_arg + count + 1
end

-- The queue a job waits on: its model's, or the legacy queue for a job that names none. A job's model is always
-- declared once set_within(models set, queues.of) holds (enqueue adds it to the set); should someone remove a
-- member by hand, its jobs go to the legacy queue rather than nowhere, and any runner answers them.
local function queue_of(queues, job)
  local model = job['model']
  if type(model) ~= 'string' or model == '' then return queues.legacy end
  return queues.of[model] or queues.legacy
end

-- Hands the lane's next pending message to its model's queue, or clears the lane's in-flight mark.
local function advance_lane(inflight_key, pending_key, queues)
  local nxt = redis.call('LPOP', pending_key)
  if nxt then
    local job = cjson.decode(nxt)
    redis.call('SET', inflight_key, job['id'])
    redis.call('LPUSH', queue_of(queues, job), nxt)
  else
    redis.call('DEL', inflight_key)
  end
end

-- Removes a user's turns from a shared conversation's history: theirs, and the answers to them (assistant turns
-- carry the user they answer). Returns how many turns went.
local function erase_turns_of(history_key, user_id)
  local raw = redis.call('GET', history_key)
  if not raw then return 0 end
  local kept, removed = {}, 0
  for _, turn in ipairs(cjson.decode(raw)) do
    if turn['user_id'] == user_id then removed = removed + 1 else kept[#kept + 1] = turn end
  end
  if removed > 0 then
    if #kept == 0 then
      redis.call('DEL', history_key)
    else
      redis.call('SET', history_key, cjson.encode(kept), 'KEEPTTL')
    end
  end
  return removed
end

-- Reads the conversation keys a forget or opt-out was given: after ARGV's first `first_arg - 1` entries come
-- the conversation ids, and from KEYS[first_key] on, each one's history key and, for a shared conversation
-- (its id starts with `shared_prefix`), its lane's in-flight and pending keys and its thread record.
local function declared_conversations(first_key, first_arg, shared_prefix)
  local list, by_id, k = {}, {}, first_key
  for i = first_arg, #ARGV do
    local id = ARGV[i]
    local conversation = {id = id, history = KEYS[k]}
    k = k + 1
    if string.sub(id, 1, #shared_prefix) == shared_prefix then
      conversation.inflight, conversation.pending, conversation.thread = KEYS[k], KEYS[k + 1], KEYS[k + 2]
      k = k + 3
    end
    list[#list + 1] = conversation
    by_id[id] = conversation
  end
  return list, by_id
end

-- A response an updater held and gave back (or lost with the updater): some of its parts may be on Discord, so
-- whoever claims it next reads its posted:{job} record under its lock. A payload that is not JSON goes back as is.
local function mark_not_fresh(raw)
  local ok, item = pcall(cjson.decode, raw)
  if not ok or type(item) ~= 'table' then return raw end
  item['fresh'] = false
  return cjson.encode(item)
end
