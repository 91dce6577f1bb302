--[[
  redline: read-only snapshot of one Celery queue on the Redis broker (kombu).
  KEYS: 1..4 the queue's priority sub-queues, highest priority first
        (q, q\x06\x163, q\x06\x166, q\x06\x169)
  Returns { lengths[4], next_tag, newest_tags[4], errors }
  kombu pushes with LPUSH and workers BRPOP the sub-queues in priority order, so the next
  message is the tail of the first non-empty sub-queue. Messages carry no enqueue time; redline
  remembers when it first saw each delivery tag instead.
]]
local lens, heads = {}, {}
local next_tag = ""
local function tag(raw)
  if not raw then return "" end
  local ok, m = pcall(cjson.decode, raw)
  if ok and type(m) == "table" and type(m["properties"]) == "table" and m["properties"]["delivery_tag"] then
    return tostring(m["properties"]["delivery_tag"])
  end
  errors = errors + 1
  return ""
end
for i = 1, 4 do
  local ty = kind(KEYS[i])
  if ty == "list" then
    lens[i] = rcall("LLEN", KEYS[i])
    heads[i] = tag(rcall("LINDEX", KEYS[i], 0))
    if next_tag == "" then next_tag = tag(rcall("LINDEX", KEYS[i], -1)) end
  elseif ty == "none" then
    lens[i] = 0
    heads[i] = ""
  else
    errors = errors + 1
    lens[i] = -1
    heads[i] = ""
  end
end
return { lens, next_tag, heads, errors }
