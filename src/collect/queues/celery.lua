--[[
  redline: read-only snapshot of one Celery queue on the Redis broker (kombu).
  KEYS: the queue's priority sub-queues in the order workers read them (q, q<sep>1, ... q<sep>9,
        or the configured priority_steps), then the queue's kombu binding set
        (_kombu.binding.<q>, to learn the separator kombu uses)
  ARGV: 1 LPOS comparisons at most per direction  2 largest head kept as a marker (bytes)
        3.. per sub-queue: the head element seen at the previous collection ("" for none)
  Returns a flat name/value list (celery.rs): now_ms, len[], pos[], head[], binding, errors.
    len: LLEN (-1 for a key of the wrong type)
    pos: index of the previous head now (= messages pushed since, kombu LPUSHes), -3 if it is
         gone (consumed: every message now is newer), -2 if there was no previous head,
         -1 if not found within the comparison budget from either end (unknown)
    head: the head element now, "" if larger than ARGV[2]
  Messages carry no enqueue time; celery.rs remembers when each push was first seen.
]]
local now = now_ms()
local maxlen = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local nsub = #KEYS - 1
local lens, pos, heads = {}, {}, {}
local function lpos(key, marker, rank)
  local r = redis.pcall("LPOS", key, marker, "RANK", rank, "MAXLEN", maxlen)
  if type(r) == "number" then return r end
  return nil
end
for i = 1, nsub do
  local ty = kind(KEYS[i])
  lens[i], pos[i], heads[i] = 0, -2, ""
  if ty == "list" then
    local len = rcall("LLEN", KEYS[i])
    lens[i] = len
    local marker = ARGV[2 + i] or ""
    if marker ~= "" then
      local at = lpos(KEYS[i], marker, 1) or lpos(KEYS[i], marker, -1)
      if at then
        pos[i] = at
      elseif len <= 2 * maxlen then
        pos[i] = -3
      else
        pos[i] = -1
      end
    end
    local head = rcall("LINDEX", KEYS[i], 0)
    if head and #head <= cap then heads[i] = head end
  elseif ty ~= "none" then
    errors = errors + 1
    lens[i] = -1
  end
end
local binding = ""
if kind(KEYS[nsub + 1]) == "set" then
  binding = rcall("SRANDMEMBER", KEYS[nsub + 1]) or ""
  if #binding > 1024 then binding = "" end
end
return { "now_ms", now, "len", lens, "pos", pos, "head", heads, "binding", binding, "errors", errors }
