--[[
  redline: job helpers shared by the BullMQ and Bull scripts (after prelude.lua). Every read of a
  job hash goes through redis.pcall: a job key of the wrong type or junk fields are counted in
  `errors` and skipped, never fatal to the rest of the queue.
]]
local now = now_ms()
-- Job times outside [2000-01-01, now + 5 min] are garbage (timestamp=1, seconds instead of ms, a
-- clock far ahead): counted, never turned into a 56-year age.
local function plausible(ms)
  return ms ~= nil and ms >= 946684800000 and ms <= now + 300000
end
-- A finite number, or nil (tonumber accepts "inf" and "nan").
local function finite(v)
  local n = tonumber(v)
  if n == nil or n ~= n or n == math.huge or n == -math.huge then return nil end
  return n
end
-- Fields of job hash `key`, or nil (counted) when the key holds another type.
local function job_fields(key, fields)
  local r = redis.pcall("HMGET", key, unpack(fields))
  if type(r) ~= "table" or r.err then errors = errors + 1; return nil end
  return r
end
-- When job `id` became ready: its timestamp plus its delay, or when its last attempt started if
-- later (a retried job keeps the timestamp it was added with). nil (counted) for a missing hash
-- (a dangling id), the wrong type, or a garbage timestamp.
local function ready_at(prefix, id)
  if not id then return nil end
  local f = job_fields(prefix .. id, {"timestamp", "delay", "processedOn"})
  if not f then return nil end
  local ts = finite(f[1])
  local t = ts and ts + (finite(f[2]) or 0)
  local started = finite(f[3])
  if t and started and started > t then t = started end
  if not plausible(t) then errors = errors + 1; return nil end
  return t
end

local oldest = nil
local lower_bound = false
-- The job behind `oldest` (nil for a due delayed job): redline may know when it really became
-- ready from the events stream (a promoted delayed job's hash says delay 0).
local oldest_id = nil
local function older(ms, id)
  if ms and (oldest == nil or ms < oldest) then oldest, oldest_id = ms, id end
end

-- Job ids both libraries generate are integers counted up as jobs are added, written without
-- leading zeros; anything else ("0900", "1e3", "job-7") is a custom id, ordered by time only.
local function counter_id(s)
  if type(s) ~= "string" or not (s == "0" or string.match(s, "^[1-9]%d*$")) then return nil end
  return tonumber(s)
end
local function newer_id(a, b)
  local x, y = counter_id(a), counter_id(b)
  if x and y then return x > y end
  return nil
end

-- The oldest ready job of list `key`, which workers take from the right. FIFO jobs are pushed on
-- the left, LIFO and requeued jobs on the right, so from the right end job ages rise to a peak and
-- fall after it: walk left until a job is newer than the one before it, reading at most `max`.
-- Job ids order the walk without reading the hash (custom ids: timestamps). Sets `lower_bound`
-- when the walk stopped at `max` with jobs left. `len`: the list's length from size() when known
-- (0: missing or empty, -1: another type, both skipped without another call).
local function list_oldest(key, prefix, max, len)
  if len then
    if len <= 0 then return end
  elseif kind(key) ~= "list" then
    return -- size() counted a wrong type
  end
  -- The last job read and its ready time; `found` once a job with a usable time was read (a
  -- garbage job cannot mark the peak).
  local prev_id, prev_t, found = nil, nil, false
  local read, chunk = 0, 4
  while read < max do
    local n = math.min(chunk, max - read)
    local ids = rcall("LRANGE", key, -(read + n), -(read + 1))
    for i = #ids, 1, -1 do
      local id = ids[i]
      local newer = prev_id and newer_id(id, prev_id)
      if found and newer then return end
      local t = ready_at(prefix, id)
      if found and newer == nil and t and prev_t and t > prev_t then return end
      if t then
        older(t, id)
        found = true
      end
      prev_id, prev_t = id, t or prev_t
      read = read + 1
    end
    if #ids < n then return end
    chunk = chunk * 2
  end
  if (len or rcall("LLEN", key)) > read then lower_bound = true end
end

-- The earliest delayed job, if its time has come. Both libraries score delayed jobs
-- due_ms * 0x1000 + a 12-bit counter (older versions: due_ms).
-- `len`: the set's size from size() when known (skips the type check).
local function due_delayed(key, len)
  if len then
    if len <= 0 then return end
  elseif kind(key) ~= "zset" then
    return
  end
  local d = rcall("ZRANGE", key, 0, 0, "WITHSCORES")
  local score = finite(d[2])
  if not score then return end
  local due = score
  if score > 1e14 then due = math.floor(score / 4096) end
  if due <= now then
    if plausible(due) then older(due) else errors = errors + 1 end
  end
end

-- Active jobs: when the longest-running one started, and how many have lost their lock (the
-- worker holding them died or stalled). Workers move jobs to the left of `active`, so the oldest
-- are at the right end. Returns oldest start ms (-1 none), stalled count, the ids read. `len`:
-- the list's length from size() when known (skips the type check).
local function active_jobs(key, prefix, max, len)
  if len then
    if len <= 0 then return -1, 0, {} end
  elseif kind(key) ~= "list" then
    return -1, 0, {}
  end
  local ids = rcall("LRANGE", key, -max, -1)
  local stalled = 0
  for _, id in ipairs(ids) do
    -- Bull moves a job into `active` (BRPOPLPUSH) before its worker locks it and sets
    -- `processedOn`: a job without either has just been taken, not stalled.
    if rcall("EXISTS", prefix .. id .. ":lock") == 0
      and redis.pcall("HEXISTS", prefix .. id, "processedOn") == 1 then
      stalled = stalled + 1
    end
  end
  local started = -1
  if #ids > 0 then
    local f = job_fields(prefix .. ids[#ids], {"processedOn"})
    local t = f and finite(f[1])
    if plausible(t) then started = t elseif f and f[1] then errors = errors + 1 end
  end
  return started, stalled, ids
end
