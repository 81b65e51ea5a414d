-- Marks the jobs waiting on the queue of a model nobody serves now whose users have not yet been told so, and
-- returns them: each user is told once (by whichever bot process marked it), however often this runs.
-- KEYS[1] query:{model}
-- Returns the newly marked jobs, as they were before marking.
local newly = {}
for index, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local ok, job = pcall(cjson.decode, raw)
  if ok and type(job) == 'table' and not job['unavailable_told'] then
    job['unavailable_told'] = true
    redis.call('LSET', KEYS[1], index - 1, cjson.encode(job))
    newly[#newly + 1] = raw
  end
end
return newly
