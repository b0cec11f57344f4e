"""bench/bench.py's command line: the settings from the options, the scratch folder,
the run (measure.Bench), the reports."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pyrtbench
from pyrtbench.config import (ALL_SERVERS, BENCH, FUNCTIONS, HOST, OPENRUNTIMES_ENV,
                              OPENRUNTIMES_FILES, OPENRUNTIMES_HOWTO, PYTHON, REPO, V5_LOG_ID,
                              V5_PATH, V5_SERVERS, log)
from pyrtbench.environment import build_ceiling, git_info, machine_info, v5_info, versions
from pyrtbench.measure import Bench
from pyrtbench.procs import become_subreaper, reap_orphans
from pyrtbench.report import analyse, write_reports
from pyrtbench.servers import Lab, make_specs
from pyrtbench.settings import Settings, parse_size


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=pyrtbench.__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true",
                    help="pyrt (seed and v5 contracts) and the ceiling only, one short run "
                         "of each figure")
    ap.add_argument("--servers", help=f"comma-separated, from {','.join(ALL_SERVERS)}")
    ap.add_argument("--runs", type=int, help="wrk runs per concurrency (default 3)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 5)")
    ap.add_argument("--concurrency", help="comma-separated connection counts (default 1,16,64)")
    ap.add_argument("--io-concurrency",
                    help="comma-separated connection counts for the I/O-bound function "
                         "(default 16,64,256; 64 with --smoke; empty: skip it)")
    ap.add_argument("--payload-sizes", help="comma-separated, e.g. 1K,64K,1M,10M")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, help="results folder (default bench/results, "
                                             "build/bench-smoke with --smoke)")
    ap.add_argument("--pyrt-bin", type=Path,
                    default=Path(os.environ.get("PYRT_BIN", REPO / "build" / "pyrt")))
    ap.add_argument("--ceiling-bin", type=Path, default=REPO / "build" / "bench" / "ceiling",
                    help="built from bench/ceiling.c if missing or older")
    ap.add_argument("--keep-work", action="store_true", help="keep the scratch folder (logs)")
    ap.add_argument("--v5-logging", choices=("enabled", "disabled"), default="enabled",
                    help="x-open-runtimes-logging of the v5 workload (enabled: with the "
                         f"fixed log id {V5_LOG_ID!r}, so the same two files are appended)")
    return ap.parse_args(argv)


def openruntimes_src() -> Optional[Path]:
    """BENCH_OPENRUNTIMES_SRC, checked; None when unset."""
    value = os.environ.get(OPENRUNTIMES_ENV, "")
    if not value:
        return None
    src = Path(value).resolve()
    missing = [f for f in OPENRUNTIMES_FILES if not (src / f).is_file()]
    if missing:
        raise SystemExit(f"bench: {OPENRUNTIMES_ENV}={value}: {', '.join(missing)} missing "
                         "(it must be open-runtimes' runtimes/python/versions/latest/src)")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise SystemExit(f"bench: {OPENRUNTIMES_ENV} is set, but running open-runtimes' "
                         "server takes root and unshare (util-linux) for its private mount "
                         "namespace")
    return src


def settings_from(args: argparse.Namespace, has_openruntimes: bool) -> Settings:
    smoke = args.smoke
    servers = (args.servers.split(",") if args.servers
               else ["ceiling", "pyrt", "pyrt-v5"] if smoke
               else [n for n in ALL_SERVERS if has_openruntimes or n != "openruntimes-v5"])
    for s in servers:
        if s not in ALL_SERVERS:
            raise SystemExit(f"bench: unknown server {s!r} (known: {', '.join(ALL_SERVERS)})")
    if "openruntimes-v5" in servers and not has_openruntimes:
        raise SystemExit(f"bench: openruntimes-v5 needs {OPENRUNTIMES_HOWTO}")
    servers = [s for s in ALL_SERVERS if s in servers]
    conc = ([int(c) for c in args.concurrency.split(",")] if args.concurrency
            else [16] if smoke else [1, 16, 64])
    io_conc = (parse_counts(args.io_concurrency) if args.io_concurrency is not None
               else [64] if smoke else [16, 64, 256])
    sizes = ([parse_size(x) for x in args.payload_sizes.split(",") if x] if args.payload_sizes
             is not None else [1024] if smoke else [1024, 64 * 1024, 1024 ** 2, 10 * 1024 ** 2])
    return Settings(
        servers=servers, runs=args.runs or (1 if smoke else 3),
        duration=args.duration or (1 if smoke else 5), concurrency=conc,
        io_concurrency=io_conc,
        fairness_conns=64, fairness_duration=2 if smoke else 6,
        payload_sizes=sizes, payload_conns=8, payload_duration=1 if smoke else 3,
        cold_runs=1 if smoke else 3, workers=args.workers, extra_workers=2,
        runaway_runs=1 if smoke else 3, runaway_timeout=2.0, warmup=1, smoke=smoke,
        v5_logging=args.v5_logging == "enabled")


def parse_counts(text: str) -> list[int]:
    """Connection counts, comma-separated (empty: none)."""
    try:
        counts = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise SystemExit(f"bench: bad connection counts {text!r}") from None
    if any(c < 1 for c in counts):
        raise SystemExit(f"bench: connection counts must be at least 1: {text!r}")
    return counts


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    or_src = openruntimes_src()
    s = settings_from(args, or_src is not None)
    out_dir: Path = args.out or (REPO / "build" / "bench-smoke" if s.smoke
                                 else BENCH / "results")
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk not found (make bench installs it)")
    if shutil.which("ss") is None:
        log("ss not found (iproute2): stalled connections are not measured")
    if {"pyrt", "pyrt-v5"} & set(s.servers) and not args.pyrt_bin.exists():
        raise SystemExit(f"bench: {args.pyrt_bin} does not exist (run make)")
    if "ceiling" in s.servers:
        build_ceiling(args.ceiling_bin)
    become_subreaper()
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="pyrt-bench-"))
    os.chmod(work, 0o755)  # pyrt's workers, each a uid of its own, read the code here
    code = work / "code"
    shutil.copytree(FUNCTIONS, code, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([PYTHON, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
                    str(code)], check=True)
    specs = make_specs(args.pyrt_bin.resolve(), args.ceiling_bin.resolve(), code, or_src)
    lab = Lab(specs, work, code)
    bench = Bench(s, lab, args.pyrt_bin)
    log(f"servers {','.join(s.servers)}; scratch {work}; results to {out_dir}")
    machine = machine_info()
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        lab.problems.append("interrupted")
    finally:
        lab.problems.extend(reap_orphans("benchmark"))
    doc: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": time.monotonic() - t0,
        "machine": machine, "git": git_info(),
        "versions": versions(specs, s.servers, args.pyrt_bin),
        "settings": s.__dict__,
        "wrk_command": (f"BENCH_BODY_FILE=body.json BENCH_KEY=... wrk -t "
                        f"{min(2, os.cpu_count() or 1)} -c C -d {s.duration}s --timeout 10s "
                        f"-s bench/post.lua http://{HOST}:PORT/ (-t 1 at c=1)"
                        + ("; v5 rows: BENCH_BODY_FILE=body-v5.json BENCH_HEADERS_FILE="
                           f"headers-v5.txt, URL http://{HOST}:PORT{V5_PATH}"
                           if any(n in V5_SERVERS for n in s.servers) else "")),
        "results": bench.results, "problems": lab.problems,
        "v5": v5_info(s, or_src),
    }
    doc["analysis"] = analyse(bench.results, s)
    write_reports(out_dir, doc)
    if args.keep_work:
        log(f"scratch folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {out_dir / 'latest.md'} ({doc['elapsed_s']:.0f} s)")
    for p in lab.problems:
        log(f"problem: {p}")
    return 130 if interrupted else (1 if lab.problems else 0)

