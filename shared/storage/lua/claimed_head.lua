-- What an updater needs before posting the response it just claimed, sent in the same pipeline as the BLMOVE
-- that claims it (only the updater adds to its own list, so the head is that response): the response, and
-- whether its user is still opted in. Its posted record (posted:{job}) is read apart, when it may hold parts.
-- KEYS[1] posting:{updater}, KEYS[2] optin set
-- Returns {response JSON, 1 if opted in else 0}, or {'', 0} for an empty list.
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then
  return {'', 0}
end
local ok, response = pcall(cjson.decode, head)
if not ok or type(response) ~= 'table' then
  return {head, 0}  -- the updater refuses the payload itself, with a clearer error
end
return {head, redis.call('SISMEMBER', KEYS[2], response['user_id'])}
