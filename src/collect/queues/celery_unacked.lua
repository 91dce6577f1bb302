--[[
  redline: Celery messages delivered to workers but not acknowledged (kombu's `unacked` hash),
  counted per routing key, once per collection.
  KEYS: 1 unacked
  ARGV: 1 most entries to decode (beyond it only the total is returned)
  Returns a flat name/value list: total (-1 for a key of the wrong type), per_key { rk, n, ... },
  decoded (0/1), errors.
  Each entry is JSON [message, exchange, routing_key]; the routing key is read from the entry's
  last 300 bytes rather than decoding the whole message.
]]
local ty = kind(KEYS[1])
if ty == "none" then return { "total", 0, "per_key", {}, "decoded", 1, "errors", 0 } end
if ty ~= "hash" then return { "total", -1, "per_key", {}, "decoded", 0, "errors", 1 } end
local total = rcall("HLEN", KEYS[1])
local per = {}
local decoded = 0
if total <= tonumber(ARGV[1]) then
  decoded = 1
  for _, v in ipairs(rcall("HVALS", KEYS[1])) do
    local rk = string.match(string.sub(v, -300), ',%s*"([^"]*)"%s*%]%s*$')
    if rk then
      per[rk] = (per[rk] or 0) + 1
    else
      errors = errors + 1
    end
  end
end
return { "total", total, "per_key", flatten(per), "decoded", decoded, "errors", errors }
