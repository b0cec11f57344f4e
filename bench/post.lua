-- wrk script for bench/bench.py: POSTs one fixed request over keep-alive connections.
--
--   BENCH_BODY_FILE=body.json BENCH_KEY=k wrk -t2 -c64 -d5s -s bench/post.lua URL
--
-- The body and the key come from the environment, so the request is static (built once
-- per thread by wrk itself; no Lua runs per request). done() prints one line,
-- "BENCH_JSON {...}", with the totals, the errors and the latency percentiles (in
-- microseconds) that bench.py reads.

local body_file = os.getenv("BENCH_BODY_FILE")
local f = assert(io.open(body_file, "rb"), "cannot open BENCH_BODY_FILE")
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-internal-challenge"] = os.getenv("BENCH_KEY") or ""

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
