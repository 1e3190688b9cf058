-- wrk script for scripts/load.sh: every request carries the next of the
-- distinct bearer tokens in the file given after "--", each thread starting
-- at its own offset; done() prints one machine-readable RESULT line.
--
--   wrk -t2 -c32 -d10s -s scripts/load.lua http://127.0.0.1:PORT -- tokens.txt /api/contacts/

local threads = 0

function setup(thread)
  thread:set("offset", threads * 101)
  threads = threads + 1
end

local tokens = {}
local i = 0
local path = "/"

function init(args)
  local file = args[1] or error("usage: -- TOKENS_FILE [PATH]")
  path = args[2] or path
  for line in io.lines(file) do
    if line ~= "" then
      tokens[#tokens + 1] = "Bearer " .. line
    end
  end
  if #tokens == 0 then
    error("no tokens in " .. file)
  end
  i = (offset or 0) % #tokens
end

function request()
  i = i % #tokens + 1
  return wrk.format("GET", path, { ["Authorization"] = tokens[i] })
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_us=%d p99_us=%d requests=%d non2xx=%d socket_errors=%d\n",
    summary.requests / seconds, latency:percentile(50), latency:percentile(99),
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
