--[[
  redline: read-only snapshot of one BullMQ or Bull queue, in one call.
  KEYS: 1 wait 2 active 3 paused 4 delayed 5 prioritized 6 waiting-children 7 completed
        8 failed 9 meta 10 id 11 metrics:completed 12 metrics:failed 13 meta-paused (Bull)
  ARGV: 1 job key prefix ("bull:q:") 2 last completed score (-1: first look)
        3 last failed score 4 max finished samples 5 layout ("bullmq" or "bull": Bull keeps
        prioritized jobs in wait and has no waiting-children) 6 max active jobs checked for a lock
  Returns { counts[8], paused, id, metrics_completed, metrics_failed, now_ms, oldest_ready_ms,
            completed_samples, failed_samples, errors, new_completed, new_failed,
            max_completed_score, max_failed_score, oldest_active_ms, stalled }
  Finished samples: timestamp, processedOn, finishedOn, atm, attemptsMade, delay per job.
]]
local function num(v)
  local n = tonumber(v)
  if n == nil then return nil end
  return math.floor(n)
end

local now = now_ms()
local bull = ARGV[5] == "bull"
local counts = {
  size(KEYS[1], "list", "LLEN"), size(KEYS[2], "list", "LLEN"), size(KEYS[3], "list", "LLEN"),
  size(KEYS[4], "zset", "ZCARD"), bull and 0 or size(KEYS[5], "zset", "ZCARD"),
  bull and 0 or size(KEYS[6], "zset", "ZCARD"),
  size(KEYS[7], "zset", "ZCARD"), size(KEYS[8], "zset", "ZCARD"),
}

local paused = 0
if kind(KEYS[9]) == "hash" and rcall("HGET", KEYS[9], "paused") then paused = 1 end
if rcall("EXISTS", KEYS[13]) == 1 then paused = 1 end

local function scalar(k)
  local ty = kind(k)
  if ty == "none" then return -1 end
  if ty ~= "string" then errors = errors + 1; return -1 end
  return num(rcall("GET", k)) or -1
end
local function hcount(k)
  local ty = kind(k)
  if ty == "none" then return -1 end
  if ty ~= "hash" then errors = errors + 1; return -1 end
  return num(rcall("HGET", k, "count")) or -1
end
local id = scalar(KEYS[10])
local mcompleted = hcount(KEYS[11])
local mfailed = hcount(KEYS[12])

-- Oldest job that could run now: the next job in wait (workers pop from the right), the head
-- of prioritized, and the earliest delayed job whose time has come.
local oldest = -1
local function older(ms)
  if ms and ms >= 0 and (oldest < 0 or ms < oldest) then oldest = ms end
end
local function ready_since(jobId)
  if not jobId then return nil end
  local f = rcall("HMGET", ARGV[1] .. jobId, "timestamp", "delay")
  local ts = num(f[1])
  if ts == nil then errors = errors + 1; return nil end
  return ts + (num(f[2]) or 0)
end
for _, list in ipairs({KEYS[1], KEYS[3]}) do
  if kind(list) == "list" then older(ready_since(rcall("LINDEX", list, -1))) end
end
if not bull and kind(KEYS[5]) == "zset" then older(ready_since(rcall("ZRANGE", KEYS[5], 0, 0)[1])) end
if kind(KEYS[4]) == "zset" then
  local d = rcall("ZRANGE", KEYS[4], 0, 0, "WITHSCORES")
  local score = tonumber(d[2])
  if score then
    -- BullMQ and Bull >= 3.x bake a 12-bit counter into the score: timestamp * 0x1000 + n.
    local due = score
    if score > 1e14 then due = math.floor(score / 4096) end
    if due <= now then older(due) end
  end
end

-- Jobs finished since the last look: exact counts, and timestamps of up to ARGV[4] of them.
local fields = {"timestamp", "processedOn", "finishedOn", "atm", "attemptsMade", "delay"}
local csamples, cnew, cmax = finished(KEYS[7], tonumber(ARGV[2]), ARGV[1], tonumber(ARGV[4]), fields)
local fsamples, fnew, fmax = finished(KEYS[8], tonumber(ARGV[3]), ARGV[1], tonumber(ARGV[4]), fields)

-- Active jobs: when the longest-running one started, and how many have lost their lock (the
-- worker holding them died or stalled; the library's stalled check will retry or fail them).
-- Workers move jobs to the left of `active`, so the oldest are at the right end.
local oldest_active, stalled = -1, 0
if counts[2] > 0 then  -- a list with jobs (size() already checked its type)
  local ids = rcall("LRANGE", KEYS[2], -tonumber(ARGV[6]), -1)
  for _, jobId in ipairs(ids) do
    if rcall("EXISTS", ARGV[1] .. jobId .. ":lock") == 0 then stalled = stalled + 1 end
  end
  if #ids > 0 then
    local started = num(rcall("HGET", ARGV[1] .. ids[#ids], "processedOn"))
    if started then oldest_active = started end
  end
end

return { counts, paused, id, mcompleted, mfailed, now, oldest, csamples, fsamples, errors,
         cnew, fnew, tostring(cmax), tostring(fmax), oldest_active, stalled }
