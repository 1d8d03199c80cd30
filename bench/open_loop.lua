-- wrk script for the open-loop measure of bench/http_bench.py and bench/wsgi_bench.py: requests
-- arrive at a fixed rate whatever the server does, and each latency counts from the moment its
-- request was due, not from when it went out (wrk2's correction for coordinated omission).
--
-- Run with as many threads as connections (wrk -tN -cN), so each thread's Lua state is one
-- connection's: connection i is due to send at t0 + (i + k * N) / RATE seconds, k = 0, 1, ...
-- Its `delay` waits until the next request is due (not at all when it is late: a stalled answer
-- makes the requests that should have gone out meanwhile late, and their waiting is counted).
-- Paths cycle through the file named by PATHS, on a new connection each time.
-- `done` prints one line: OPEN-LOOP due=<requests due> answered=<n> unanswered=<n>
-- p50=<ms> p99=<ms> p999=<ms> max=<ms>; a request still unanswered when the run's DURATION
-- (seconds, as wrk's -d) ended counts with the time it had waited by then, so a stall at the
-- end cannot hide either. A request lost to a socket error is not in these figures: wrk's own
-- "Socket errors" line counts it.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } open_loop_timespec;
  int clock_gettime(int clock, open_loop_timespec *ts);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("open_loop_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local rate = tonumber(os.getenv("RATE"))
local threads = {}

setup = function(thread)
  -- Runs in the main state, once per thread, before any starts: one shared start time.
  if #threads == 0 then
    start_ms = now_ms() + 20
    end_ms = start_ms + tonumber(os.getenv("DURATION")) * 1000
  end
  thread:set("index", #threads)
  thread:set("t0", start_ms)
  threads[#threads + 1] = thread
end

local paths = {}
for line in io.lines(os.getenv("PATHS")) do
  paths[#paths + 1] = line
end

init = function()
  interval_ms = tonumber(os.getenv("CONNECTIONS")) * 1000 / rate
  k = 0
  due_at = nil
  latencies = {}
  answered = 0
  late_waits = {}
  next_path = index
end

delay = function()
  due_at = t0 + index * 1000 / rate + k * interval_ms
  k = k + 1
  local wait = due_at - now_ms()
  if wait < 0 then
    return 0
  end
  return math.floor(wait)
end

request = function()
  -- A timer may fire a little early: then the wait counts from the send, never from later.
  sent_at = now_ms()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path], { ["Connection"] = "close" })
end

response = function(status, headers, body)
  answered = answered + 1
  latencies[answered] = now_ms() - math.min(due_at, sent_at)
  due_at = nil
end

done = function(summary, latency, requests)
  local all, due, pending = {}, 0, 0
  for _, thread in ipairs(threads) do
    local lat = thread:get("latencies")
    for _, v in ipairs(lat) do
      all[#all + 1] = v
    end
    due = due + thread:get("k")
    local waiting = thread:get("due_at")
    if waiting ~= nil then
      if waiting < end_ms then
        pending = pending + 1
        all[#all + 1] = end_ms - waiting
      else
        due = due - 1 -- due after the end of the run
      end
    end
  end
  table.sort(all)
  local function pct(p)
    if #all == 0 then
      return 0
    end
    return all[math.max(1, math.ceil(#all * p))]
  end
  io.write(string.format("OPEN-LOOP due=%d answered=%d unanswered=%d p50=%.2f p99=%.2f "
    .. "p999=%.2f max=%.2f\n", due, #all - pending, pending, pct(0.5), pct(0.99), pct(0.999),
    pct(1.0)))
end
