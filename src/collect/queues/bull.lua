--[[
  redline: read-only snapshot of one Bull (v3/v4) queue (after prelude.lua and jobs.lua).
  KEYS: 1 wait 2 active 3 paused 4 delayed 5 priority 6 completed 7 failed 8 meta-paused 9 id
        10 metrics:completed 11 metrics:failed
  ARGV: 1 job key prefix ("bull:q:") 2 max jobs walked per list 3 max priority bands
        4 max active jobs checked for a lock 5 finished-set cursors as JSON
        {completed = {score, ids}, failed = {score, ids}} (score -1: first look)
        6 max finished jobs sampled per set
  Returns flat name/value pairs (prelude.lua's flatten).
]]
local prefix = ARGV[1]
local out = {
  waiting = size(KEYS[1], "list", "LLEN"), active = size(KEYS[2], "list", "LLEN"),
  paused = size(KEYS[3], "list", "LLEN"), delayed = size(KEYS[4], "zset", "ZCARD"),
  completed = size(KEYS[6], "zset", "ZCARD"), failed = size(KEYS[7], "zset", "ZCARD"),
}
out.is_paused = rcall("EXISTS", KEYS[8])

local function scalar(k)
  local ty = kind(k)
  if ty == "none" then return -1 end
  if ty ~= "string" then errors = errors + 1; return -1 end
  local n = finite(rcall("GET", k))
  if not n or n < 0 then errors = errors + 1; return -1 end
  return n
end
-- Bull's metrics keys (workers started with the `metrics` option): lifetime `count` fields.
local function hcount(k)
  local ty = kind(k)
  if ty == "none" then return -1 end
  if ty ~= "hash" then errors = errors + 1; return -1 end
  local n = finite(rcall("HGET", k, "count"))
  if not n or n < 0 then errors = errors + 1; return -1 end
  return n
end
out.id = scalar(KEYS[9])
out.metrics_completed = hcount(KEYS[10])
out.metrics_failed = hcount(KEYS[11])

-- Oldest job that could run now. Bull keeps prioritized jobs inside the wait (or paused) list, in
-- bands at its right end; its `priority` set scores each by priority. Band p's oldest job sits
-- after the jobs of the bands before it: one ZCOUNT and one LINDEX per band, checked against the
-- set (a job in the wrong place makes the age a lower bound).
local max_walk = tonumber(ARGV[2])
list_oldest(KEYS[1], prefix, max_walk, out.waiting)
list_oldest(KEYS[3], prefix, max_walk, out.paused)
local target = out.is_paused == 1 and KEYS[3] or KEYS[1]
if kind(KEYS[5]) == "zset" and kind(target) == "list" then
  local low = "-inf"
  local z = rcall("ZCARD", KEYS[5])
  for _ = 1, tonumber(ARGV[3]) do
    local r = rcall("ZRANGEBYSCORE", KEYS[5], low, "+inf", "WITHSCORES", "LIMIT", 0, 1)
    if #r == 0 then low = nil; break end
    local ahead = rcall("ZCOUNT", KEYS[5], "-inf", "(" .. r[2])
    local id = rcall("LINDEX", target, -(ahead + 1))
    if id and rcall("ZSCORE", KEYS[5], id) == r[2] then older(ready_at(prefix, id), id) else lower_bound = true end
    low = "(" .. r[2]
  end
  if low and #rcall("ZRANGEBYSCORE", KEYS[5], low, "+inf", "LIMIT", 0, 1) > 0 then lower_bound = true end
  -- The oldest job without a priority sits just left of the prioritized bands.
  if z > 0 then
    local id = rcall("LINDEX", target, -(z + 1))
    if id and not rcall("ZSCORE", KEYS[5], id) then older(ready_at(prefix, id), id) end
  end
end
due_delayed(KEYS[4], out.delayed)
out.now = now
out.oldest_ready = oldest or -1
out.oldest_lower_bound = lower_bound and 1 or 0
out.oldest_active, out.stalled = active_jobs(KEYS[2], prefix, tonumber(ARGV[4]), out.active)

-- Jobs that entered finished set `key` since the cursor {score, ids}: several jobs can finish in
-- one millisecond, some after redline's read, so the cursor keeps the ids already counted at its
-- score and the next count starts at that score again. Returns the count, the new cursor, and
-- timestamp, delay, processedOn, finishedOn, attemptsMade of up to `max` of the new jobs.
local max_seen = 1000
local fields = {"timestamp", "delay", "processedOn", "finishedOn", "attemptsMade"}
local function finished_since(key, cursor, max)
  local last, seen = tonumber(cursor[1]) or -1, cursor[2] or {}
  local ty = kind(key)
  -- A missing set is an empty baseline: the first jobs to finish later count as new.
  if ty == "none" then return 0, {math.max(last, 0), {}}, {} end
  if ty ~= "zset" then errors = errors + 1; return 0, cursor, {} end
  local top = rcall("ZREVRANGE", key, 0, 0, "WITHSCORES")
  local high = tonumber(top[2]) or math.max(last, 0)
  local now_seen = rcall("ZRANGEBYSCORE", key, high, high, "LIMIT", 0, max_seen)
  if last < 0 then return 0, {high, now_seen}, {} end
  local skip = {}
  for _, id in ipairs(seen) do skip[id] = true end
  local n = rcall("ZCOUNT", key, last, "+inf")
  for _, id in ipairs(seen) do
    if tonumber(rcall("ZSCORE", key, id)) == last then n = n - 1 end
  end
  local samples = {}
  for _, id in ipairs(rcall("ZRANGEBYSCORE", key, last, "+inf", "LIMIT", 0, max + #seen)) do
    if #samples >= max * #fields then break end
    if not skip[id] then
      local f = job_fields(prefix .. id, fields)
      if f then
        for i = 1, #fields do samples[#samples + 1] = f[i] or "" end
      end
    end
  end
  return n, {high, now_seen}, samples
end
local cursors = cjson.decode(ARGV[5])
local max_samples = tonumber(ARGV[6])
local next_cursors = {}
out.new_completed, next_cursors.completed, out.completed_samples =
  finished_since(KEYS[6], cursors.completed or {-1, {}}, max_samples)
out.new_failed, next_cursors.failed, out.failed_samples =
  finished_since(KEYS[7], cursors.failed or {-1, {}}, max_samples)
out.cursors = cjson.encode(next_cursors)
out.errors = errors
return flatten(out)
