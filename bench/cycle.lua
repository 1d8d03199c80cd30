-- wrk script for bench/wsgi_bench.py: every connection asks for the paths listed in the file
-- named by PATHS, in turn, as fast as answers come back (closed loop, no think time), on a new
-- connection each time as an installer does.
local paths = {}
for line in io.lines(os.getenv("PATHS")) do
  paths[#paths + 1] = line
end
local next_path = 0

request = function()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path], { ["Connection"] = "close" })
end
