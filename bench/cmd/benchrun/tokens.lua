-- wrk script of the tokenward HTTP benchmark.
--   wrk ... -s tokens.lua URL -- TOKENS_FILE THREADS PATH
-- Each request carries the next of the tokens in TOKENS_FILE (one a line),
-- round robin across threads: thread k sends tokens k, k+THREADS, k+2*THREADS...
-- done() prints one machine-readable line: "WRKRESULT {json}".

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  local path, nthreads, target = args[1], tonumber(args[2]), args[3] or "/"
  local f = assert(io.open(path, "r"))
  reqs = {}
  for line in f:lines() do
    if #line > 0 then
      reqs[#reqs + 1] = wrk.format("GET", target, { ["Authorization"] = "Bearer " .. line })
    end
  end
  f:close()
  assert(#reqs > 0, "no tokens in " .. path)
  stride = nthreads
  pos = id % #reqs
end

function request()
  local r = reqs[pos + 1]
  pos = (pos + stride) % #reqs
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKRESULT {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"mean_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
