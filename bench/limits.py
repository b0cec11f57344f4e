#!/usr/bin/env python3
"""Figures for the hard limits: timeout accuracy, kill-to-ready time, PSS per worker.

    python3 bench/limits.py [--bin build/pyrt]

- timeout accuracy: a `while True: pass` with "timeout": 1, time from sending the
  request to its answer (10 runs; median and max of answer - deadline);
- kill to ready: from the master's "killing worker" line to the next "worker ready"
  line in its debug log (ms);
- PSS: summed over the server's processes with 1, 2 and 4 workers, the PSS each
  extra worker adds, and for comparison a python3 that imports the same modules as
  a worker, on its own (what a worker costs without the zygote's copy-on-write).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def tree(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
                kids.setdefault(int(fields[1]), []).append(int(d))
            except (OSError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


class Server:
    def __init__(self, binary: str, code: Path, workers: int, log: Path) -> None:
        self.port = free_port()
        self.log = log
        with open(log, "wb") as f:
            self.proc = subprocess.Popen(
                [binary, "serve", "--code-dir", str(code), "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", str(workers), "--log-level", "debug"],
                env=dict(os.environ, INTERNAL_RUNTIME_KEY=KEY), stdout=f, stderr=f)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ready_workers() >= workers:
                return
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def ready_workers(self) -> int:
        return self.log.read_text(errors="replace").count(" ready\n") - 1  # minus the zygote

    def post(self, body: dict, timeout: float = 30) -> tuple[int, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request("POST", "/", body=json.dumps(body), headers={"x-internal-challenge": KEY})
        r = c.getresponse()
        return r.status, r.read()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15)


def stamp(line: str) -> float:
    return datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=str(Path(__file__).resolve().parents[1] / "build" / "pyrt"))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pyrt-bench-"))
    code = base / "code"
    code.mkdir()
    (code / "index.py").write_text("def main(req, res):\n    return res.send('hi')\n")
    (code / "spin.py").write_text("def main(req, res):\n    while True:\n        pass\n")

    srv = Server(args.bin, code, 2, base / "timeout.log")
    late = []
    for _ in range(10):
        start = time.monotonic()
        status, body = srv.post({"file": "spin.py", "timeout": 1})
        late.append((time.monotonic() - start - 1.0) * 1000)
        assert status == 500 and b"timed out" in body, body
        time.sleep(0.1)
    srv.stop()
    lines = (base / "timeout.log").read_text().splitlines()
    ready_ms = []
    for i, line in enumerate(lines):
        if "killing worker" in line:
            for later in lines[i + 1:]:
                if re.search(r"worker \d+ ready$", later):
                    ready_ms.append((stamp(later) - stamp(line)) * 1000)
                    break
    print(f"timeout 1 s, answer after the deadline: median {statistics.median(late):.1f} ms, "
          f"max {max(late):.1f} ms (10 runs, client-side)")
    print(f"kill to a ready replacement: median {statistics.median(ready_ms):.1f} ms, "
          f"max {max(ready_ms):.1f} ms ({len(ready_ms)} kills, from the master's log)")

    pss = {}
    for n in (1, 2, 4):
        srv = Server(args.bin, code, n, base / f"pss{n}.log")
        for _ in range(20):
            srv.post({})
        time.sleep(0.3)
        pss[n] = sum(pss_kib(p) for p in tree(srv.proc.pid))
        srv.stop()
    print(f"PSS of the whole server: 1 worker {pss[1] / 1024:.1f} MiB, 2 workers "
          f"{pss[2] / 1024:.1f} MiB, 4 workers {pss[4] / 1024:.1f} MiB; each extra worker "
          f"{(pss[4] - pss[2]) / 2 / 1024:.2f} MiB")
    alone = subprocess.Popen(
        ["/usr/bin/python3", "-c", "import json, importlib.util, marshal, traceback, io, site, "
         "tempfile, sys; sys.stdout.write('ready\\n'); sys.stdout.flush(); import time; "
         "time.sleep(30)"], stdout=subprocess.PIPE)
    assert alone.stdout is not None
    alone.stdout.readline()
    time.sleep(0.2)
    print(f"a python3 with the same imports, on its own: {pss_kib(alone.pid) / 1024:.1f} MiB PSS")
    alone.kill()
    alone.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
