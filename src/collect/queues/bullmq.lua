--[[
  redline: read-only snapshot of one BullMQ queue (after prelude.lua and jobs.lua). When the
  queue's events stream has entries to read, it runs in one MULTI with the XRANGE that reads them,
  so the stream numbers returned here describe exactly the entries that XRANGE saw.
  KEYS: 1 wait 2 active 3 paused 4 delayed 5 prioritized 6 waiting-children 7 completed 8 failed
        9 meta 10 events
  ARGV: 1 job key prefix ("bull:q:") 2 max jobs walked per list 3 max priority bands
        4 max active jobs checked for a lock 5 "1" on the first look (return the active job ids)
        6.. finished jobs whose hash to read (their start was not in the stream)
  Returns flat name/value pairs (prelude.lua's flatten).
]]
local prefix = ARGV[1]
local out = {
  waiting = size(KEYS[1], "list", "LLEN"), active = size(KEYS[2], "list", "LLEN"),
  paused = size(KEYS[3], "list", "LLEN"), delayed = size(KEYS[4], "zset", "ZCARD"),
  prioritized = size(KEYS[5], "zset", "ZCARD"), ["waiting-children"] = size(KEYS[6], "zset", "ZCARD"),
  completed = size(KEYS[7], "zset", "ZCARD"), failed = size(KEYS[8], "zset", "ZCARD"),
}
-- HEXISTS answers 0 for a missing meta hash; another type is counted.
local hp = redis.pcall("HEXISTS", KEYS[9], "paused")
out.is_paused = 0
if not wrong_type(hp) and hp == 1 then
  out.is_paused = 1
end

-- Oldest job that could run now: the wait and (pre-v5) paused lists walked from the right, the
-- head of every priority band, the earliest delayed job whose time has come.
local max_walk = tonumber(ARGV[2])
list_oldest(KEYS[1], prefix, max_walk, out.waiting)
list_oldest(KEYS[3], prefix, max_walk, out.paused)
-- Prioritized scores are priority * 2^32 + a counter: the first member at or above
-- band * 2^32 is that band's oldest job. One ZRANGEBYSCORE per band, at most ARGV[3] bands.
if out.prioritized > 0 then
  local band = 4294967296
  local low = "-inf"
  for _ = 1, tonumber(ARGV[3]) do
    local r = rcall("ZRANGEBYSCORE", KEYS[5], low, "+inf", "WITHSCORES", "LIMIT", 0, 1)
    local score = finite(r[2])
    if not score then low = nil; break end
    older(ready_at(prefix, r[1]))
    low = string.format("%.0f", (math.floor(score / band) + 1) * band)
  end
  if low and #rcall("ZRANGEBYSCORE", KEYS[5], low, "+inf", "LIMIT", 0, 1) > 0 then lower_bound = true end
end
due_delayed(KEYS[4], out.delayed)
out.now = now
out.oldest_ready = oldest or -1
out.oldest_lower_bound = lower_bound and 1 or 0

local active_ids
out.oldest_active, out.stalled, active_ids = active_jobs(KEYS[2], prefix, tonumber(ARGV[4]), out.active)
if ARGV[5] == "1" then out.active_ids = active_ids end

-- The events stream: how many entries it ever received (Redis >= 7), how many it holds, its
-- first entry and its last id. With the XRANGE beside this call they tell how many entries were
-- trimmed before redline read them.
local et = kind(KEYS[10])
out.ev_type = et
if et == "stream" then
  local info = rcall("XINFO", "STREAM", KEYS[10])
  for i = 1, #info, 2 do
    local k, v = info[i], info[i + 1]
    if k == "length" then out.ev_len = v
    elseif k == "entries-added" then out.ev_added = v
    elseif k == "last-generated-id" then out.ev_last = v
    elseif k == "first-entry" and type(v) == "table" then out.ev_first = v[1]
    end
  end
elseif et ~= "none" then
  errors = errors + 1
end

-- Finished jobs the stream could not time: read their hash while it still exists.
local looked = {}
for i = 6, #ARGV do
  local f = job_fields(prefix .. ARGV[i], {"timestamp", "delay", "processedOn", "finishedOn"})
  if f and f[1] then
    looked[#looked + 1] = ARGV[i]
    for j = 1, 4 do looked[#looked + 1] = f[j] or "" end
  end
end
out.looked = looked
out.errors = errors
return flatten(out)
