"""pyrt's benchmark: pyrt against the anchors and a C ceiling, in one run, one machine.

    make bench                    # installs the servers, builds, runs this (~10-15 min)
    make bench-smoke              # pyrt (seed, v5) and the C ceiling, one short run
    /usr/bin/python3 bench/bench.py [--smoke] [--servers pyrt,ceiling,...] [--runs N]
        [--duration S] [--out DIR] [--pyrt-bin PATH] [--ceiling-bin PATH]

Every server serves the same functions (bench/functions, copied and byte-compiled into a
scratch folder) with the same number of worker processes, on 127.0.0.1, each on its own
free port, started in its own session and stopped by its process group. Figures (see
bench/README.md for how each is taken):

- throughput, p50/p99 latency and server CPU time per request, with wrk and
  bench/post.lua (the upstream test request, keep-alive) at 1, 16 and 64 connections,
  several runs each, rounds interleaved across the servers;
- fairness under a 64-connection load: a fresh client's request latency, and the wrk
  connections that got nothing for over 1 s (server side, from `ss -tin` lastrcv);
- cold start: from exec to the first successful execution answer;
- memory: PSS summed over the server's processes after load, and per extra worker;
- payload scaling: an echo function with 1 KiB .. 10 MiB payloads;
- runaway code: `while True: pass` with "timeout": 2.

The v5 workload (open-runtimes' contract, CONTRACT.md section 5): pyrt with `--contract v5`
("pyrt-v5") and, when BENCH_OPENRUNTIMES_SRC names a folder with open-runtimes' own Python
server (never part of this repository: bench/README.md), that server under gunicorn with its
aiohttp worker ("openruntimes-v5"), both running bench/functions/v5 with the executor's
request; throughput, latency, CPU, fairness, cold start and memory as above.

Writes latest.md, latest.json and latest.tsv into --out. Python 3 stdlib only.

The package, by module: config (paths, servers, workloads, the log line), procs
(processes from /proc, start and stop; shared with tests/soak/soak.py), httpclient (one
timed request on a fresh connection, the health wait; shared with the soak), servers
(Spec, Server, Lab), wrk (load), settings, measure (Bench: every figure), environment
(machine, versions, git), report (analysis, latest.md/.json/.tsv) and cli (main).
"""
