--[[
  redline: read-only snapshot of one RQ queue.
  KEYS: 1 rq:queue:<q> 2 rq:wip:<q> 3 rq:failed:<q> 4 rq:finished:<q> 5 rq:deferred:<q>
        6 rq:scheduled:<q> 7 rq:canceled:<q> 8 rq:workers:<q>
  ARGV: 1 job key prefix ("rq:job:") 2 last finished score 3 last failed score 4 max samples
        5 max started jobs read for their start time
  Returns { counts[7], workers, now_ms, head_enqueued_at, first_scheduled_score, finished_samples,
            failed_samples, errors, new_finished, new_failed, max_finished, max_failed,
            earliest_started_at, abandoned }
  Registry scores are expiry times (end + ttl), so they order jobs by finish time.
]]
local now = now_ms()
local counts = {
  size(KEYS[1], "list", "LLEN"), size(KEYS[2], "zset", "ZCARD"), size(KEYS[3], "zset", "ZCARD"),
  size(KEYS[4], "zset", "ZCARD"), size(KEYS[5], "zset", "ZCARD"), size(KEYS[6], "zset", "ZCARD"),
  size(KEYS[7], "zset", "ZCARD"),
}
local workers = size(KEYS[8], "set", "SCARD")

-- RQ enqueues with RPUSH and dequeues with LPOP: the head is the oldest waiting job.
local head = ""
if kind(KEYS[1]) == "list" then
  local id = rcall("LINDEX", KEYS[1], 0)
  if id then
    local jk = ARGV[1] .. id
    if kind(jk) == "hash" then
      head = rcall("HGET", jk, "enqueued_at") or ""
      if head == "" then errors = errors + 1 end
    else
      errors = errors + 1
    end
  end
end
local sched = ""
if kind(KEYS[6]) == "zset" then
  local s = rcall("ZRANGE", KEYS[6], 0, 0, "WITHSCORES")
  sched = s[2] or ""
end

local fields = {"enqueued_at", "started_at", "ended_at"}
local fs, fnew, fmax = finished(KEYS[4], tonumber(ARGV[2]), ARGV[1], tonumber(ARGV[4]), fields)
local xs, xnew, xmax = finished(KEYS[3], tonumber(ARGV[3]), ARGV[1], tonumber(ARGV[4]), fields)
-- Started jobs: wip is scored by heartbeat expiry, so entries below now were abandoned by a dead
-- worker (RQ's cleanup will retry or fail them). Members are job_id:execution_id (RQ 2+) or a
-- job id; the earliest started_at (ISO 8601, so the least string) among the first ARGV[5].
local earliest, abandoned = "", 0
if counts[2] > 0 then
  abandoned = rcall("ZCOUNT", KEYS[2], "-inf", "(" .. (now / 1000))
  for _, member in ipairs(rcall("ZRANGE", KEYS[2], 0, tonumber(ARGV[5]) - 1)) do
    local id = string.match(member, "^([^:]+):") or member
    local jk = ARGV[1] .. id
    if kind(jk) == "hash" then
      local started = rcall("HGET", jk, "started_at")
      if started and started ~= "" and (earliest == "" or started < earliest) then earliest = started end
    end
  end
end

return { counts, workers, now, head, sched, fs, xs, errors, fnew, xnew, tostring(fmax), tostring(xmax),
         earliest, abandoned }
