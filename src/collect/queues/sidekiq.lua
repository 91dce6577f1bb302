--[[
  redline: read-only snapshot of one Sidekiq queue.
  KEYS: 1 <ns>queue:<q>
  Returns { length, now_ms, oldest_enqueued_ms (-1 if none), errors }
  Sidekiq pushes with LPUSH and fetches with BRPOP: the tail is the oldest job (this is the
  job Sidekiq's own Queue#latency reads). enqueued_at is float seconds (Sidekiq <= 7) or
  integer milliseconds (Sidekiq 8).
]]
local now = now_ms()
local ty = kind(KEYS[1])
if ty == "none" then return { 0, now, -1, 0 } end
if ty ~= "list" then return { -1, now, -1, 1 } end
local len = rcall("LLEN", KEYS[1])
local oldest = -1
local tail = rcall("LINDEX", KEYS[1], -1)
if tail then
  local ok, job = pcall(cjson.decode, tail)
  local at = ok and type(job) == "table" and tonumber(job["enqueued_at"] or job["created_at"])
  if at then
    if at < 1e11 then at = at * 1000 end
    oldest = math.floor(at)
  else
    errors = errors + 1
  end
end
return { len, now, oldest, errors }
