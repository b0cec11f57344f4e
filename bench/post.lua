-- wrk script for bench/bench.py: POSTs one fixed request over keep-alive connections.
--
--   BENCH_BODY_FILE=body.json BENCH_KEY=k wrk -t2 -c64 -d5s -s bench/post.lua URL
--   BENCH_BODY_FILE=body.json BENCH_HEADERS_FILE=headers.txt wrk ... -s bench/post.lua URL
--
-- The body, the key (sent as x-internal-challenge, the seed contract, when BENCH_KEY is
-- set) and any further headers (BENCH_HEADERS_FILE: one "name: value" a line; the v5
-- workload's executor headers) come from the environment, so the request is static
-- (built once per thread by wrk itself; no Lua runs per request). The path is the URL's.
-- done() prints one line, "BENCH_JSON {...}", with the totals, the errors and the latency
-- percentiles (in microseconds) that bench.py reads.

local body_file = os.getenv("BENCH_BODY_FILE")
local f = assert(io.open(body_file, "rb"), "cannot open BENCH_BODY_FILE")
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key and key ~= "" then
   wrk.headers["x-internal-challenge"] = key
end
local headers_file = os.getenv("BENCH_HEADERS_FILE")
if headers_file and headers_file ~= "" then
   local h = assert(io.open(headers_file, "rb"), "cannot open BENCH_HEADERS_FILE")
   for line in h:lines() do
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name and name:lower() == "content-type" then
         wrk.headers["Content-Type"] = value
      elseif name then
         wrk.headers[name] = value
      end
   end
   h:close()
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"mean": %.1f, "stdev": %.1f, "max": %d, "p50": %d, "p90": %d, ' ..
      '"p99": %d, "p999": %d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end
