--[[
  redline: read-only snapshot of one RQ queue.
  KEYS: 1 rq:queue:<q> 2 rq:wip:<q> 3 rq:failed:<q> 4 rq:finished:<q> 5 rq:deferred:<q>
        6 rq:scheduled:<q> 7 rq:canceled:<q> 8 rq:workers:<q>
  ARGV: 1 job key prefix ("rq:job:")  2 head window  3 started jobs read at most  4 clock margin (s)
        5 job hashes read at most for durations
        6 finished band: "w" on a first look, else "p w_prev w"   7 failed band (same)
        8 finished result_ttl lines to search, "ttl from ..." (see candidates)  9 failed lines
        10 job ids already timed, space-separated   11.. job ids that were running at the previous
        collection
  Returns a flat name/value list (rq.rs reads it by name). Times are integer ms since the epoch,
  -1 when unknown.

  Registries are scored by expiry (end + ttl, whole seconds; +inf for result_ttl=-1, the ttl
  itself when negative in the failed registry), so they are counted by "bands": per-second
  counts around the expiry frontier plus aggregate counts above it and below zero. A job that
  finished since the previous collection raised one of those counts (rq.rs).
]]
local now = now_ms()
local c = math.floor(now / 1000)
local margin = tonumber(ARGV[4])
local prefix = ARGV[1]

-- ISO 8601 UTC (RQ writes "2026-11-24T08:55:59.365604Z"; old versions omit the Z) to ms.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end
-- Times before 2000 or more than a day ahead are garbage, not ages.
local function iso_ms(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec = string.match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d%.?%d*)")
  if not y then return nil end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  if not sec or mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or sec >= 61 then return nil end
  -- Microseconds kept (a double holds them): jobs enqueued within one ms must still compare.
  local ms = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000
  if ms < 946684800000 or ms > now + 86400000 then return nil end
  return ms
end
-- One small field of a job hash, never a huge one (a garbage value is not read).
local function field(jk, name)
  if rcall("HSTRLEN", jk, name) > 64 then return false end
  return rcall("HGET", jk, name)
end
-- enqueued_at of a job: ms, nil for a job whose hash is gone (RQ skips those too), false if bad.
local function enqueued(id)
  local jk = prefix .. id
  local ty = kind(jk)
  if ty == "none" then return nil end
  if ty ~= "hash" then errors = errors + 1; return false end
  local v = iso_ms(field(jk, "enqueued_at"))
  if v then return v end
  errors = errors + 1
  return false
end

local counts = {
  size(KEYS[1], "list", "LLEN"), size(KEYS[2], "zset", "ZCARD"), size(KEYS[3], "zset", "ZCARD"),
  size(KEYS[4], "zset", "ZCARD"), size(KEYS[5], "zset", "ZCARD"), size(KEYS[6], "zset", "ZCARD"),
  size(KEYS[7], "zset", "ZCARD"),
}
local workers = size(KEYS[8], "set", "SCARD")

-- Oldest waiting job. RQ pushes with RPUSH (LPUSH for at_front) and pops the head, so the list
-- holds the at_front jobs newest first, then the others oldest first: enqueued_at falls, then
-- rises, and the oldest job is where it turns (given producers whose clocks agree). Walk the
-- head window until it rises; if it is still falling at the window's end (an at_front block
-- longer than the window), find the turn by bisection. Flag a lower bound when the search could
-- not finish (garbage or gone jobs in its way, or out of probes).
local oldest, lower = -1, 0
local n = counts[1]
if n > 0 then
  local ids = rcall("LRANGE", KEYS[1], 0, tonumber(ARGV[2]) - 1)
  local prev, turned = nil, false
  for _, id in ipairs(ids) do
    local v = enqueued(id)
    if v then
      if prev and v > prev then
        turned = true
        break
      end
      oldest, prev = v, v
    end
  end
  if not turned and n > #ids then
    lower = 1
    local function at(i)
      local id = rcall("LINDEX", KEYS[1], i)
      if not id then return nil end
      return enqueued(id)
    end
    local lo, hi = #ids - 1, n - 1
    for _ = 1, 12 do
      if lo >= hi then
        lower = 0
        break
      end
      local mid = math.floor((lo + hi) / 2)
      local a, b = at(mid), at(mid + 1)
      if not a or not b then break end
      if oldest < 0 or a < oldest then oldest = a end
      if b < oldest then oldest = b end
      if a > b then lo = mid + 1 else hi = mid end
    end
  end
end
-- Scheduled jobs are due at their score (Unix seconds); one already due is ready too.
local due = -1
if counts[6] > 0 then
  local s = tonumber(rcall("ZRANGE", KEYS[6], 0, 0, "WITHSCORES")[2])
  if s and s * 1000 <= now then
    if s * 1000 >= 946684800000 then due = math.floor(s * 1000) else errors = errors + 1 end
  end
end

-- Started jobs: wip is scored by heartbeat expiry, so entries below now were abandoned by a dead
-- worker. Members are job_id:execution_id (RQ 2+) or a job id. The earliest started_at among
-- the first ARGV[3], and up to 100 running ids, so the next collection can time them.
local started, abandoned, running = -1, 0, {}
if counts[2] > 0 then
  abandoned = rcall("ZCOUNT", KEYS[2], "-inf", "(" .. (now / 1000))
  for _, member in ipairs(rcall("ZRANGE", KEYS[2], 0, tonumber(ARGV[3]) - 1)) do
    local id = string.match(member, "^([^:]+):") or member
    local jk = prefix .. id
    -- One HSTRLEN: 0 for a job (or field) that is gone, an error for a key that is not a hash.
    local len = redis.pcall("HSTRLEN", jk, "started_at")
    if type(len) == "number" and len > 0 then
      local at = len <= 64 and iso_ms(rcall("HGET", jk, "started_at"))
      if at then
        if started < 0 or at < started then started = at end
      else
        errors = errors + 1
      end
      if #running < 100 then running[#running + 1] = id end
    elseif type(len) ~= "number" then
      errors = errors + 1
    end
  end
end

-- Per-second counts over [lo, hi], aggregates above and below zero (see the header).
local function band(key, spec)
  local nums = {}
  for x in string.gmatch(spec, "%S+") do nums[#nums + 1] = tonumber(x) end
  local p, wprev, w = nil, nil, nums[#nums]
  if #nums == 3 then p, wprev = nums[1], nums[2] end
  local reset = 0
  -- A gap of more than 5 minutes (or a clock that went back) starts over.
  if p and (c - p > 300 or c < p) then p, reset = nil, 1 end
  local lo = (p or c) - margin
  local hi = c + w
  if p and p + wprev > hi then hi = p + wprev end
  local per = {}
  if rcall("ZCOUNT", key, lo, "(" .. (hi + 1)) > 0 then
    for s = lo, hi do per[#per + 1] = rcall("ZCOUNT", key, s, "(" .. (s + 1)) end
  end
  local above_prev = -1
  if p then above_prev = rcall("ZCOUNT", key, p + wprev + 1, "+inf") end
  return { lo = lo, per = per, above_prev = above_prev, above = rcall("ZCOUNT", key, c + w + 1, "+inf"),
           neg = rcall("ZCOUNT", key, "-inf", "(0"), reset = reset, p = p }
end

-- Job hashes of jobs that may have finished since the previous collection: those in the score
-- window where each known result_ttl line puts them, and the ones that were running. rq.rs
-- keeps the ones that really are new (ended_at, ids already timed).
local budget = tonumber(ARGV[5])
-- A job's three timestamps, raw (rq.rs parses them), "" when missing or oversized. HSTRLEN
-- first, so a garbage value is never copied; it fails on a key that is not a hash (skipped).
local function times(id, score, out)
  local jk = prefix .. id
  local n = redis.pcall("HSTRLEN", jk, "enqueued_at")
  if type(n) ~= "number" then return end
  local v = {} -- oversized: reported empty, counted as bad data by rq.rs
  if n <= 64 and rcall("HSTRLEN", jk, "started_at") <= 64 and rcall("HSTRLEN", jk, "ended_at") <= 64 then
    v = rcall("HMGET", jk, "enqueued_at", "started_at", "ended_at")
    if not (v[1] or v[2] or v[3]) then return end -- the job is gone (expired with its entry)
  end
  out[#out + 1] = id
  out[#out + 1] = score
  for i = 1, 3 do out[#out + 1] = v[i] or "" end
end
-- Jobs already timed (rq.rs sends those that can still be in a window): never read twice.
local known, nknown = {}, 0
for id in string.gmatch(ARGV[10], "%S+") do
  known[id] = true
  nknown = nknown + 1
end
-- `lines` is "ttl from ...": on each line read from score `from` (inclusive) up to where jobs
-- finishing now land. Returns the last score read per line ("" if none).
local function candidates(key, lines, out)
  local nums, reach = {}, {}
  for x in string.gmatch(lines, "%S+") do nums[#nums + 1] = x end
  for i = 1, #nums - 1, 2 do
    local t, from = tonumber(nums[i]), nums[i + 1]
    local got = {}
    if budget > 0 then
      got = rcall("ZRANGEBYSCORE", key, from, "(" .. (c + t + margin + 1), "WITHSCORES", "LIMIT", 0,
        budget + nknown)
    end
    local last = ""
    for j = 1, #got, 2 do
      if budget <= 0 then break end
      last = got[j + 1]
      if not known[got[j]] then
        known[got[j]] = true
        budget = budget - 1
        times(got[j], got[j + 1], out)
      end
    end
    reach[#reach + 1] = last
  end
  return reach
end

if oldest >= 0 then oldest = math.floor(oldest) end
if started >= 0 then started = math.floor(started) end
local reply = { "now_ms", now, "workers", workers, "oldest_ms", oldest, "oldest_lower", lower, "due_ms", due,
                "started_ms", started, "abandoned", abandoned, "running", running }
for i, state in ipairs({ "waiting", "active", "failed", "completed", "deferred", "delayed", "canceled" }) do
  reply[#reply + 1] = state
  reply[#reply + 1] = counts[i]
end
local gone = 0
for _, r in ipairs({ { "fin", KEYS[4], ARGV[6], ARGV[8] }, { "fail", KEYS[3], ARGV[7], ARGV[9] } }) do
  local name, key = r[1], r[2]
  local ty = kind(key)
  if ty == "zset" or ty == "none" then
    local b = band(key, r[3])
    local samples = {}
    local reach = {}
    if b.p then reach = candidates(key, r[4], samples) end
    for i = 11, #ARGV do
      local score = rcall("ZSCORE", key, ARGV[i])
      if score and budget > 0 then
        budget = budget - 1
        times(ARGV[i], score, samples)
      end
    end
    for k, v in pairs({ lo = b.lo, per = b.per, above_prev = b.above_prev, above = b.above, neg = b.neg,
                        reset = b.reset, samples = samples, reach = reach }) do
      reply[#reply + 1] = name .. "_" .. k
      reply[#reply + 1] = v
    end
  else
    errors = errors + 1
  end
end
-- Jobs that were running and have left every trace (result_ttl=0 deletes the job at once):
-- finished without a registry entry, so no counter can see them.
for i = 11, #ARGV do
  local still = false
  for _, id in ipairs(running) do
    if id == ARGV[i] then still = true end
  end
  if not still and rcall("EXISTS", prefix .. ARGV[i]) == 0 then gone = gone + 1 end
end
reply[#reply + 1] = "gone"
reply[#reply + 1] = gone
reply[#reply + 1] = "errors"
reply[#reply + 1] = errors
return reply
