--[[
  redline: Sidekiq's server-wide sets, counters and processes, once per collection.
  KEYS: 1 <ns>schedule 2 <ns>retry 3 <ns>dead 4 <ns>stat:processed 5 <ns>stat:failed 6 <ns>processes
  ARGV: 1 namespace prefix ("" or "myapp:")
  Returns a flat name/value list: scheduled, retry, dead, processed, failed (-1 for a key of the
  wrong type), processes { busy_1, "q1,q2", busy_2, "q3", ... }, running { queue, earliest
  run_at (s), ... }, errors.
  Running jobs come from each process's `<identity>:work` hash (Sidekiq 7+) or `:workers` (6),
  refreshed by its heartbeat: tid -> {"queue", "payload", "run_at"}.
]]
local function counter(k)
  local ty = kind(k)
  if ty == "none" then return 0 end
  if ty ~= "string" or rcall("STRLEN", k) > 32 then errors = errors + 1; return -1 end
  local v = tonumber(rcall("GET", k))
  -- Not a count (garbage, inf, nan, negative): counted, never reported.
  if not v or v ~= v or v < 0 or v > 1e15 then errors = errors + 1; return -1 end
  return v
end
local procs = {}
local started = {}
local function running(key)
  for _, v in ipairs(rcall("HVALS", key)) do
    local ok, w = pcall(cjson.decode, v)
    if ok and type(w) == "table" and type(w["queue"]) == "string" and tonumber(w["run_at"]) then
      local at = tonumber(w["run_at"])
      if started[w["queue"]] == nil or at < started[w["queue"]] then started[w["queue"]] = at end
    else
      errors = errors + 1
    end
  end
end
if kind(KEYS[6]) == "set" then
  for _, id in ipairs(rcall("SMEMBERS", KEYS[6])) do
    local key = ARGV[1] .. id
    if kind(key) == "hash" then
      local f = rcall("HMGET", key, "busy", "info")
      local ok, info = pcall(cjson.decode, f[2] or "")
      local queues = ""
      if ok and type(info) == "table" and type(info["queues"]) == "table" then
        queues = table.concat(info["queues"], ",")
      else
        errors = errors + 1
      end
      local busy = tonumber(f[1]) or 0
      if busy ~= busy or busy < 0 or busy > 1e6 then errors = errors + 1; busy = 0 end
      procs[#procs + 1] = busy
      procs[#procs + 1] = queues
      for _, suffix in ipairs({":work", ":workers"}) do
        if kind(key .. suffix) == "hash" then running(key .. suffix) end
      end
    end
  end
end
return { "scheduled", size(KEYS[1], "zset", "ZCARD"), "retry", size(KEYS[2], "zset", "ZCARD"),
         "dead", size(KEYS[3], "zset", "ZCARD"), "processed", counter(KEYS[4]), "failed", counter(KEYS[5]),
         "processes", procs, "running", flatten(started, tostring), "errors", errors }
