--[[
  redline: Celery messages delivered to workers but not acknowledged (kombu's `unacked` hash),
  counted per routing key, once per collection, in bounded slices.
  KEYS: 1 unacked
  ARGV: 1 entries read per call at most  2 HSCAN cursor ("0" to start a pass)
  Returns a flat name/value list: total (-1 for a key of the wrong type), per_key { rk, n, ... }
  of the entries read, full (1: every entry was read in this call), cursor (the next HSCAN
  cursor, "0" when a pass is complete), read, bytes and us (entries and bytes copied, and the
  microseconds the read took: redline sizes the next slice from them), errors.
  A hash no larger than ARGV[1] is read whole; a larger one one HSCAN slice per call, so no
  call copies more than about ARGV[1] messages. Each entry is JSON [message, exchange,
  routing_key]; the routing key is read from the entry's end rather than decoding the message.
]]
local ty = kind(KEYS[1])
if ty == "none" then return { "total", 0, "per_key", {}, "full", 1, "cursor", "0", "errors", 0 } end
if ty ~= "hash" then return { "total", -1, "per_key", {}, "full", 0, "cursor", "0", "errors", 1 } end
local total = rcall("HLEN", KEYS[1])
-- The read's own cost, by the server's clock (TIME is not frozen inside a script).
local function clock()
  local t = rcall("TIME")
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local t0 = clock()
local per = {}
local read, bytes = 0, 0
local function count(v)
  read = read + 1
  bytes = bytes + #v
  -- Reversed, the routing key is anchored at the start: no scan of the message.
  local rk = string.match(string.reverse(string.sub(v, -300)), '^%s*%]%s*"([^"]*)"%s*,')
  if rk then
    rk = string.reverse(rk)
    per[rk] = (per[rk] or 0) + 1
  else
    errors = errors + 1
  end
end
if total <= tonumber(ARGV[1]) then
  local vals = rcall("HVALS", KEYS[1])
  local us = clock() - t0
  for _, v in ipairs(vals) do count(v) end
  return { "total", total, "per_key", flatten(per), "full", 1, "cursor", "0", "read", read, "bytes", bytes,
           "us", us, "errors", errors }
end
local res = rcall("HSCAN", KEYS[1], ARGV[2], "COUNT", ARGV[1])
local us = clock() - t0
local kv = res[2]
for i = 2, #kv, 2 do count(kv[i]) end
return { "total", total, "per_key", flatten(per), "full", 0, "cursor", res[1], "read", read, "bytes", bytes,
         "us", us, "errors", errors }
