--[[
  redline: read-only snapshot of one Redis stream and its consumer groups.
  KEYS: 1 the stream
  Returns { length, now_ms, { name, consumers, pending, lag, next_undelivered_ms,
            oldest_pending_ms, ... }, errors }   (-1 where unknown)
]]
local now = now_ms()
local ty = kind(KEYS[1])
if ty == "none" then return { 0, now, {}, 0 } end
if ty ~= "stream" then return { -1, now, {}, 1 } end
local function ms(id)
  if not id then return -1 end
  return tonumber(string.match(id, "^(%d+)")) or -1
end
local out = {}
for _, g in ipairs(rcall("XINFO", "GROUPS", KEYS[1])) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  local nxt = rcall("XRANGE", KEYS[1], "(" .. f["last-delivered-id"], "+", "COUNT", 1)
  local pend = rcall("XPENDING", KEYS[1], f["name"])
  out[#out + 1] = f["name"]
  out[#out + 1] = f["consumers"] or 0
  out[#out + 1] = f["pending"] or 0
  out[#out + 1] = tonumber(f["lag"]) or -1
  out[#out + 1] = (nxt[1] and ms(nxt[1][1])) or -1
  out[#out + 1] = ms(pend[2])
end
return { rcall("XLEN", KEYS[1]), now, out, 0 }
