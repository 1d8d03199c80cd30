-- wrk script for bench/http_bench.py: every connection is one client that asks for the paths
-- listed in the file named by PATHS, in turn, on a new connection each time (as an installer
-- does), and waits THINK_MS milliseconds between its requests.
local paths = {}
for line in io.lines(os.getenv("PATHS")) do
  paths[#paths + 1] = line
end
local think_ms = tonumber(os.getenv("THINK_MS"))
local next_path = 0

request = function()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path], { ["Connection"] = "close" })
end

delay = function()
  return think_ms
end
