--[[
  redline: the parts of one BullMQ queue's read that plain reads could not settle
  (bullmq_snapshot.rs), read again in one atomic step (after prelude.lua and jobs.lua):
  - the oldest ready job (ARGV[7] = "1"): a LIFO run longer than the plain read, custom job ids,
    several priority bands, a candidate job gone or garbage between rounds. The lists' sizes are
    read again here, so they and the age describe one instant;
  - the active jobs (ARGV[8] = "1"): every job the plain read could time finished between rounds.
  KEYS: 1 wait 2 paused 3 prioritized 4 active
  ARGV: 1 job key prefix ("bull:q:") 2 max jobs walked per list 3 max priority bands
        4 5 6 -1 when wait, paused, prioritized had another type in the plain read (already
        counted: skipped), else 0 7 ready flag 8 active flag 9 max active jobs checked for a lock
  Returns flat name/value pairs: waiting, paused, prioritized, oldest_ready (ms, -1 none),
  oldest_id (its job), oldest_lower_bound; active, oldest_active (ms, -1 none), stalled; errors.
]]
local prefix = ARGV[1]
local out = {}
local function len(i, cmd)
  if tonumber(ARGV[3 + i]) < 0 then return -1 end
  return size(KEYS[i], nil, cmd)
end
if ARGV[7] == "1" then
  out.waiting, out.paused, out.prioritized = len(1, "LLEN"), len(2, "LLEN"), len(3, "ZCARD")
  local max_walk = tonumber(ARGV[2])
  list_oldest(KEYS[1], prefix, max_walk, out.waiting)
  list_oldest(KEYS[2], prefix, max_walk, out.paused)
  -- Prioritized scores are priority * 2^32 + a counter: the first member at or above
  -- band * 2^32 is that band's oldest job. One ZRANGEBYSCORE per band, at most ARGV[3] bands.
  if out.prioritized > 0 then
    local band = 4294967296
    local low = "-inf"
    for _ = 1, tonumber(ARGV[3]) do
      local r = rcall("ZRANGEBYSCORE", KEYS[3], low, "+inf", "WITHSCORES", "LIMIT", 0, 1)
      local score = finite(r[2])
      if not score then low = nil; break end
      older(ready_at(prefix, r[1]), r[1])
      low = string.format("%.0f", (math.floor(score / band) + 1) * band)
    end
    if low and #rcall("ZRANGEBYSCORE", KEYS[3], low, "+inf", "LIMIT", 0, 1) > 0 then lower_bound = true end
  end
  out.oldest_ready = oldest or -1
  out.oldest_id = oldest_id
  out.oldest_lower_bound = lower_bound and 1 or 0
end
if ARGV[8] == "1" then
  out.active = size(KEYS[4], nil, "LLEN")
  out.oldest_active, out.stalled = active_jobs(KEYS[4], prefix, tonumber(ARGV[9]), out.active)
end
out.errors = errors
return flatten(out)
