-- Stores the model a user chose, if they are opted in (nothing is stored about anyone else).
-- KEYS[1] optin set, KEYS[2] choice:{user}
-- ARGV[1] user id, ARGV[2] model name
-- Returns 1 when stored, 0 when the user is not opted in.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
