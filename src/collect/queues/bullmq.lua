--[[
  redline: the oldest ready job of one BullMQ queue (after prelude.lua and jobs.lua), for the
  queues whose plain reads could not settle it (bullmq_snapshot.rs): a LIFO run longer than the
  plain read, custom job ids, several priority bands, a job hash gone or garbage. Walks the lists
  and bands in one atomic step.
  KEYS: 1 wait 2 paused 3 prioritized
  ARGV: 1 job key prefix ("bull:q:") 2 max jobs walked per list 3 max priority bands
        4 5 6 lengths of wait, paused, prioritized from the plain read (-1: another type,
        already counted)
  Returns flat name/value pairs: oldest_ready (ms, -1 none), oldest_lower_bound, errors.
]]
local prefix = ARGV[1]
local max_walk = tonumber(ARGV[2])
list_oldest(KEYS[1], prefix, max_walk, tonumber(ARGV[4]))
list_oldest(KEYS[2], prefix, max_walk, tonumber(ARGV[5]))
-- Prioritized scores are priority * 2^32 + a counter: the first member at or above
-- band * 2^32 is that band's oldest job. One ZRANGEBYSCORE per band, at most ARGV[3] bands.
if tonumber(ARGV[6]) > 0 then
  local band = 4294967296
  local low = "-inf"
  for _ = 1, tonumber(ARGV[3]) do
    local r = redis.pcall("ZRANGEBYSCORE", KEYS[3], low, "+inf", "WITHSCORES", "LIMIT", 0, 1)
    if wrong_type(r) then low = nil; break end
    local score = finite(r[2])
    if not score then low = nil; break end
    older(ready_at(prefix, r[1]))
    low = string.format("%.0f", (math.floor(score / band) + 1) * band)
  end
  if low and #rcall("ZRANGEBYSCORE", KEYS[3], low, "+inf", "LIMIT", 0, 1) > 0 then lower_bound = true end
end
return flatten({ oldest_ready = oldest or -1, oldest_lower_bound = lower_bound and 1 or 0, errors = errors })
