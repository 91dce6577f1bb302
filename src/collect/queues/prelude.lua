--[[
  redline: helpers shared by every queue script (prepended at build time; one SHA per script).
  Scripts only read. A key of an unexpected type is counted in `errors`, never fatal.
]]
local rcall = redis.call
local errors = 0
local function kind(k)
  local t = rcall("TYPE", k)
  return t.ok or t
end
-- Length of key `k` (of type `want`) via `cmd`: 0 if missing, -1 (counted) if another type. No
-- TYPE first (it doubled the calls): Redis answers 0 for a missing key and WRONGTYPE for another
-- type, which pcall turns into a value.
-- Whether `r` (a redis.pcall reply) is an error: WRONGTYPE is counted; any other error (a refused
-- command) is raised as redis.call would, failing the read instead of passing for bad data.
local function wrong_type(r)
  if type(r) ~= "table" or not r.err then return false end
  if string.sub(r.err, 1, 9) ~= "WRONGTYPE" then error(r) end
  errors = errors + 1
  return true
end
local function size(k, want, cmd)
  local r = redis.pcall(cmd, k)
  if wrong_type(r) then return -1 end
  return r
end
-- A table as a flat reply { k1, v1, k2, v2, ... }, values through `conv` when given.
local function flatten(t, conv)
  local out = {}
  for k, v in pairs(t) do
    out[#out + 1] = k
    out[#out + 1] = conv and conv(v) or v
  end
  return out
end
local function now_ms()
  local t = rcall("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Jobs added to sorted set `key` since score `last` (-1: first look, only take the baseline):
-- the exact count, and `fields` of up to `max` of their hashes (`job_prefix .. id`), flat, ""
-- for a missing field; jobs whose hash is gone are skipped. Returns samples, count, new last.
local function finished(key, last, job_prefix, max, fields)
  local ty = kind(key)
  -- A missing set is an empty baseline (0): the first jobs to finish later count as new.
  if ty == "none" then return {}, 0, math.max(last, 0) end
  if ty ~= "zset" then errors = errors + 1; return {}, 0, last end
  local top = rcall("ZREVRANGE", key, 0, 0, "WITHSCORES")
  local high = tonumber(top[2]) or math.max(last, 0)
  if last < 0 then return {}, 0, high end
  local n = rcall("ZCOUNT", key, "(" .. last, "+inf")
  local out = {}
  for _, id in ipairs(rcall("ZRANGEBYSCORE", key, "(" .. last, "+inf", "LIMIT", 0, max)) do
    local jk = job_prefix .. id
    if kind(jk) == "hash" then
      local f = rcall("HMGET", jk, unpack(fields))
      for i = 1, #fields do out[#out + 1] = f[i] or "" end
    end
  end
  return out, n, high
end
