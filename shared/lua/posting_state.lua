-- What an updater needs before posting the response at the head of its list: whether the user is still
-- opted in, and which parts of the job's answer are already on Discord. Sent in the same pipeline as the
-- BLMOVE that claims a response (only the updater adds to its own list), so a claim is one round trip.
-- KEYS[1] posting:{updater}, KEYS[2] optin set
-- ARGV[1] posted key prefix (the job id completes it)
-- Returns {response JSON, 1 if opted in else 0, {part index, message id, ...}}, or {'', 0, {}} for an
-- empty list.
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then
  return {'', 0, {}}
end
local ok, response = pcall(cjson.decode, head)
if not ok or type(response) ~= 'table' then
  return {head, 0, {}}  -- the updater refuses the payload itself, with a clearer error
end
return {
  head,
  redis.call('SISMEMBER', KEYS[2], response['user_id']),
  redis.call('HGETALL', ARGV[1] .. response['job_id']),
}
