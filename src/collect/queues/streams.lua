--[[
  redline: read-only snapshot of one Redis stream and its consumer groups.
  KEYS: 1 the stream
  ARGV: 1 most entries counted for a group whose lag XINFO cannot give
  Returns flat name/value pairs: type, length, now, errors, groups (one flat name/value array per
  group: name, consumers, pending, lag, lag_lower_bound, next_ms, oldest_pending_ms; -1 = none).
]]
local out = { now = now_ms(), groups = {} }
local ty = kind(KEYS[1])
out.type = ty
if ty ~= "stream" then
  if ty ~= "none" then errors = errors + 1 end
  out.errors = errors
  return flatten(out)
end
local function split(id)
  local ms, seq = string.match(id or "", "^(%d+)-(%d+)$")
  return tonumber(ms), tonumber(seq)
end
local function ms(id)
  return (split(id)) or -1
end
-- a < b for two entry ids
local function before(a, b)
  local am, as = split(a)
  local bm, bs = split(b)
  if not am or not bm then return false end
  return am < bm or (am == bm and as < bs)
end
local info = rcall("XINFO", "STREAM", KEYS[1])
local s = {}
for i = 1, #info, 2 do s[info[i]] = info[i + 1] end
out.length = s["length"] or 0
local first = type(s["first-entry"]) == "table" and s["first-entry"][1] or nil
local last = s["last-generated-id"]
local max = tonumber(ARGV[1])
for _, g in ipairs(rcall("XINFO", "GROUPS", KEYS[1])) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  local ldi = f["last-delivered-id"]
  local lag, bound = tonumber(f["lag"]), 0
  local nxt = rcall("XRANGE", KEYS[1], "(" .. ldi, "+", "COUNT", 1)
  if not lag then
    -- XINFO has no lag for a group created at an arbitrary id or after deletions (or before
    -- Redis 7): everything, nothing, or the entries after the last delivered one, counted up to
    -- `max` (then the lag is a lower bound).
    if not before(ldi, last) then
      lag = 0
    elseif not first or before(ldi, first) then
      lag = out.length
    else
      lag = #rcall("XRANGE", KEYS[1], "(" .. ldi, "+", "COUNT", max + 1)
      if lag > max then lag, bound = max, 1 end
    end
  end
  local pend = rcall("XPENDING", KEYS[1], f["name"])
  out.groups[#out.groups + 1] = flatten({
    name = f["name"], consumers = f["consumers"] or 0, pending = f["pending"] or 0, lag = lag,
    lag_lower_bound = bound, next_ms = (nxt[1] and ms(nxt[1][1])) or -1, oldest_pending_ms = ms(pend[2]),
  })
end
out.errors = errors
return flatten(out)
