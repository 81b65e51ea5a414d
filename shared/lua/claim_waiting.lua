-- Moves up to N jobs that are already waiting into a runner's list, oldest first, in one round trip,
-- with each job's user history when asked (what the runner reads next anyway).
-- Sent in the same pipeline as the BLMOVE that claims a batch's first job, it can also report that job
-- and its history: BLMOVE leaves it at the head of the runner's list, which only the runner adds to.
-- KEYS[1] query, KEYS[2] processing:{runner}
-- ARGV[1] most jobs to move, ARGV[2] history key prefix, or '' to read no history,
-- ARGV[3] '1' to report the head of the runner's list first
-- Returns {job, turns, job, turns, ...}: payloads with their user's stored turns (JSON, '' for none or
-- not asked); with ARGV[3] = '1' the first pair is the head of the list ('' if the list is empty).
local function turns_of(raw)
  if ARGV[2] == '' then return '' end
  return redis.call('HGET', ARGV[2] .. cjson.decode(raw)['user_id'], 'turns') or ''
end

local out = {}
if ARGV[3] == '1' then
  local head = redis.call('LINDEX', KEYS[2], 0)
  if head then
    out = {head, turns_of(head)}
  else
    out = {'', ''}
  end
end
for _ = 1, tonumber(ARGV[1]) do
  local raw = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not raw then break end
  out[#out + 1] = raw
  out[#out + 1] = turns_of(raw)
end
return out
