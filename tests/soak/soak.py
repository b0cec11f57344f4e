#!/usr/bin/env python3
"""A bounded soak of the real server: mixed traffic from several clients.

    python3 tests/soak/soak.py --seconds 60 [--clients 8] [--bin build/pyrt]

Good requests, timeouts, crashing workers, output floods and bad input, from several
keep-alive clients at once, for a fixed time. Reports requests sent, answered and
lost (a request with no complete HTTP answer: must be 0), the answers by status,
and the master's RSS over time. Exits non-zero if anything was lost, an answer was
not one the contract allows, or the server did not stop cleanly.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

# The benchmark's process and HTTP helpers (bench/pyrtbench): the server is started in a
# session of its own and stopped the way the benchmark stops it.
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from pyrtbench.httpclient import wait_healthy  # noqa: E402
from pyrtbench.procs import free_port, rss_kib, spawn, terminate  # noqa: E402

KEY = "soak-key"

FUNCTIONS = {
    "hello": "def main(req, res):\n    return res.send('hello')\n",
    "spin": "def main(req, res):\n    while True:\n        pass\n",
    "crash": "import os\n\ndef main(req, res):\n    os._exit(3)\n",
    "raises": "def main(req, res):\n    raise ValueError('soak')\n",
    "chatty": (
        "def main(req, res):\n"
        "    for i in range(2000):\n"
        "        print('line', i, 'x' * 100)\n"
        "    return res.json({'ok': True})\n"
    ),
    "echo": "def main(req, res):\n    return res.json(req.payload)\n",
}

# (name, weight, body, expected statuses)
SCENARIOS: list[tuple[str, int, Callable[[Path], bytes], set[int]]] = [
    ("hello", 50, lambda d: json.dumps({"path": str(d / "hello"), "file": "index.py"}).encode(), {200}),
    ("echo", 15, lambda d: json.dumps({"path": str(d / "echo"), "file": "index.py",
                                       "payload": {"n": random.random()}}).encode(), {200}),
    ("timeout", 3, lambda d: json.dumps({"path": str(d / "spin"), "file": "index.py",
                                         "timeout": 0.3}).encode(),
     {500}),
    ("crash", 4, lambda d: json.dumps({"path": str(d / "crash"), "file": "index.py"}).encode(), {500}),
    ("raises", 8, lambda d: json.dumps({"path": str(d / "raises"), "file": "index.py"}).encode(), {500}),
    ("chatty", 4, lambda d: json.dumps({"path": str(d / "chatty"), "file": "index.py"}).encode(), {200}),
    ("bad-json", 8, lambda d: b"{not json", {400}),
    ("not-object", 4, lambda d: b"[1, 2]", {400}),
    ("empty", 2, lambda d: b"", {500}),
    ("wrong-key", 2, lambda d: b"{}", {401}),
]


class Totals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.answered = 0
        self.lost = 0
        self.unexpected: list[str] = []
        self.by_status: dict[int, int] = {}

    def record(self, scenario: str, status: Optional[int], expected: set[int]) -> None:
        with self.lock:
            self.sent += 1
            if status is None:
                self.lost += 1
                return
            self.answered += 1
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if status not in expected and len(self.unexpected) < 20:
                self.unexpected.append(f"{scenario}: {status}")


def client(port: int, code: Path, stop_at: float, totals: Totals, seed: int) -> None:
    rng = random.Random(seed)
    weights = [s[1] for s in SCENARIOS]
    conn: Optional[http.client.HTTPConnection] = None
    while time.monotonic() < stop_at:
        name, _, make_body, expected = rng.choices(SCENARIOS, weights)[0]
        key = "wrong" if name == "wrong-key" else KEY
        status: Optional[int] = None
        for attempt in range(2):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
                conn.request("POST", "/", body=make_body(code),
                             headers={"x-internal-challenge": key})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                break
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError) as e:
                # A keep-alive connection closed by the server between two requests
                # (after a 401, say) is retried once on a new one; a second failure,
                # or any failure mid-answer, counts as lost.
                if conn is not None:
                    conn.close()
                conn = None
                if attempt == 1 or not isinstance(e, http.client.RemoteDisconnected):
                    break
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                break
        totals.record(name, status, expected)
    if conn is not None:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bin", default=str(REPO / "build" / "pyrt"))
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="pyrt-soak-"))
    code = base / "code"
    for name, source in FUNCTIONS.items():
        (code / name).mkdir(parents=True)
        (code / name / "index.py").write_text(source)
    log_path = base / "server.log"
    port = free_port()
    env = dict(os.environ, INTERNAL_RUNTIME_KEY=KEY)
    server, _ = spawn([args.bin, "serve", "--code-dir", str(code), "--host", "127.0.0.1",
                       "--port", str(port), "--workers", str(args.workers), "--max-body", "1M"],
                      env, log_path)
    try:
        if not wait_healthy(port, 10, lambda: server.poll() is None):
            print("soak: server did not become healthy", file=sys.stderr)
            return 1

        totals = Totals()
        stop_at = time.monotonic() + args.seconds
        threads = [threading.Thread(target=client, args=(port, code, stop_at, totals, i))
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        rss: list[int] = []
        while time.monotonic() < stop_at:
            rss.append(rss_kib(server.pid))
            time.sleep(1)
        for t in threads:
            t.join(30)
        rss.append(rss_kib(server.pid))
    finally:
        # SIGTERM, 15 s to stop cleanly, then SIGKILL to what is left (a non-zero status)
        terminate(server, 15)
        rc = server.returncode

    alerts = [line for line in log_path.read_text(errors="replace").splitlines()
              if "[alert]" in line or '"level":"alert"' in line]
    print(f"soak: {args.seconds:.0f} s, {args.clients} clients, {args.workers} workers")
    print(f"soak: sent={totals.sent} answered={totals.answered} lost={totals.lost}")
    print("soak: by status: " + ", ".join(f"{k}={v}" for k, v in sorted(totals.by_status.items())))
    print(f"soak: master RSS KiB: start={rss[0] if rss else 0} max={max(rss, default=0)} "
          f"end={rss[-1] if rss else 0}")
    print(f"soak: server exit status {rc}, {len(alerts)} alert line(s), log {log_path}")
    failed = totals.lost > 0 or bool(totals.unexpected) or rc != 0 or bool(alerts)
    for u in totals.unexpected:
        print(f"soak: unexpected answer {u}")
    for a in alerts[:5]:
        print(f"soak: {a}")
    print(f"{0 if failed else 1} passed, {1 if failed else 0} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
