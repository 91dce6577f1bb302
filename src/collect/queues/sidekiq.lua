--[[
  redline: read-only snapshot of one Sidekiq queue.
  KEYS: 1 <ns>queue:<q>
  Returns a flat name/value list: now_ms, len (-1 for a key of the wrong type), oldest_ms (-1 if
  none), lower (1 if garbage jobs were skipped at the tail), errors.
  Sidekiq pushes with LPUSH and fetches with BRPOP: the tail is the oldest job (the job Sidekiq's
  own Queue#latency reads). enqueued_at is float seconds (Sidekiq <= 7) or integer milliseconds
  (Sidekiq 8). A tail job without a usable enqueued_at (not JSON, missing, before 2000 or more
  than a day ahead) is counted and skipped, up to 3, and the age is flagged as a lower bound.
]]
local now = now_ms()
local ty = kind(KEYS[1])
if ty == "none" then return { "now_ms", now, "len", 0, "oldest_ms", -1, "lower", 0, "errors", 0 } end
if ty ~= "list" then return { "now_ms", now, "len", -1, "oldest_ms", -1, "lower", 0, "errors", 1 } end
local len = rcall("LLEN", KEYS[1])
local oldest, lower = -1, 0
for i = 1, math.min(len, 3) do
  local raw = rcall("LINDEX", KEYS[1], -i)
  local ok, job = pcall(cjson.decode, raw or "")
  local at = ok and type(job) == "table" and tonumber(job["enqueued_at"])
  if at and at < 1e11 then at = at * 1000 end
  if at and at >= 946684800000 and at <= now + 86400000 then
    oldest = math.floor(at)
    break
  end
  errors = errors + 1
  lower = 1
end
return { "now_ms", now, "len", len, "oldest_ms", oldest, "lower", lower, "errors", errors }
