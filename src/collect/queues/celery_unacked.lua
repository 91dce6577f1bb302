--[[
  redline: Celery messages delivered to workers but not acknowledged (kombu's `unacked` hash),
  counted per routing key, once per collection.
  KEYS: 1 unacked 2 unacked_index
  ARGV: 1 most entries to decode (beyond it only the total is returned)
  Returns { total, oldest_delivery_seconds (string, "" if none), { routing_key, count, ... }, errors }
]]
local ty = kind(KEYS[1])
if ty == "none" then return { 0, "", {}, 0 } end
if ty ~= "hash" then return { -1, "", {}, 1 } end
local total = rcall("HLEN", KEYS[1])
local oldest = ""
if kind(KEYS[2]) == "zset" then
  oldest = rcall("ZRANGE", KEYS[2], 0, 0, "WITHSCORES")[2] or ""
end
local per = {}
if total <= tonumber(ARGV[1]) then
  for _, v in ipairs(rcall("HVALS", KEYS[1])) do
    local ok, entry = pcall(cjson.decode, v)
    if ok and type(entry) == "table" and type(entry[3]) == "string" then
      per[entry[3]] = (per[entry[3]] or 0) + 1
    else
      errors = errors + 1
    end
  end
end
return { total, oldest, flatten(per), errors }
