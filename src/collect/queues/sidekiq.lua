--[[
  redline: read-only snapshot of one Sidekiq queue.
  KEYS: 1 <ns>queue:<q>
  Returns a flat name/value list: now_ms, len (-1 for a key of the wrong type), oldest_ms (-1 if
  none), lower (1 if garbage jobs were skipped at the tail), errors.
  Sidekiq pushes with LPUSH and fetches with BRPOP: the tail is the oldest job (the job Sidekiq's
  own Queue#latency reads). enqueued_at is float seconds (Sidekiq <= 7) or integer milliseconds
  (Sidekiq 8). A tail job without a usable enqueued_at (not JSON, missing, before 2000 or more
  than a day ahead) is counted and skipped, up to 3, and the age is flagged as a lower bound.
  A job larger than BIG bytes is not decoded (cjson took ~0.35 s of Redis per 50 MiB job, every
  collection): Sidekiq's client writes enqueued_at last, so the number is taken from the job's
  last bytes. Redis has no command to read part of a list element, so such a job is still copied
  once per collection (README: known limits). To avoid that copy where it matters, MEMORY USAGE
  (no copy; every node up to 1,000 jobs, else 64 sampled from the head) gives the list's bytes:
  when its jobs average more than HUGE bytes, no job is read and the age is flagged a lower bound
  (`huge` 1).
]]
local BIG = 65536
local HUGE = 131072
local now = now_ms()
local len = size(KEYS[1], "list", "LLEN")
if len < 0 then return { "now_ms", now, "len", -1, "oldest_ms", -1, "lower", 0, "errors", 1 } end
local oldest, lower = -1, 0
if len > 0 then
  -- Every node of a short list; a long one (a node per job or per few jobs: O(len)) is
  -- estimated from its first 64 nodes, so the call stays bounded whatever the backlog.
  local mem = redis.pcall("MEMORY", "USAGE", KEYS[1], "SAMPLES", len <= 1000 and "0" or "64")
  if type(mem) == "number" and mem / len > HUGE then
    return { "now_ms", now, "len", len, "oldest_ms", -1, "lower", 1, "huge", 1, "errors", errors }
  end
end
for i = 1, math.min(len, 3) do
  local raw = rcall("LINDEX", KEYS[1], -i) or ""
  local at
  if #raw > BIG then
    -- The last "enqueued_at": in the job's last 1 KiB (a plain find per occurrence, no decode).
    local tail, from = string.sub(raw, -1024), 1
    while true do
      local s, e = string.find(tail, '"enqueued_at":', from, true)
      if not s then break end
      at = tonumber(string.match(tail, "^%s*([%d%.eE+-]+)", e + 1)) or at
      from = e + 1
    end
  else
    local ok, job = pcall(cjson.decode, raw)
    at = ok and type(job) == "table" and tonumber(job["enqueued_at"])
  end
  if at and at < 1e11 then at = at * 1000 end
  if at and at >= 946684800000 and at <= now + 86400000 then
    oldest = math.floor(at)
    break
  end
  errors = errors + 1
  lower = 1
end
return { "now_ms", now, "len", len, "oldest_ms", oldest, "lower", lower, "errors", errors }
