#!/usr/bin/env python3
"""A bounded soak of the real server: mixed traffic from several clients.

    python3 tests/soak/soak.py --seconds 60 [--clients 8] [--bin build/pyrt]

Good requests, timeouts, crashing workers, output floods, async functions run as
tasks (some cancelled at their deadline) and bad input, from several keep-alive clients
at once, for a fixed time; beside them, raw-socket clients send mutated HTTP (bytes
flipped, inserted, dropped, cut) and half-close. Reports requests sent, answered and
lost (a request with no complete HTTP answer: must be 0), the answers by status, the
mutated requests answered, closed and hung (must be 0), and the master's RSS over time.
Exits non-zero if anything was lost or hung, an answer was not one the contract
allows, or the server did not stop cleanly.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
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
    # Run as tasks (--async-slots): most answer, some are cancelled at their deadline.
    "wait": "import asyncio\n\nasync def main(req, res):\n"
            "    await asyncio.sleep(req.payload.get('s', 0.01))\n"
            "    return res.send('waited')\n",
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
    ("wait", 10, lambda d: json.dumps({"path": str(d / "wait"), "file": "index.py",
                                      "payload": {"s": 0.02}}).encode(), {200}),
    ("wait-late", 2, lambda d: json.dumps({"path": str(d / "wait"), "file": "index.py",
                                           "payload": {"s": 5}, "timeout": 0.3}).encode(),
     {500}),
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


class Mutations:
    """What the raw-socket clients saw: an HTTP answer, a close without one (a mutated
    request may be incomplete), or nothing at all within the bound (hung: a failure)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answered = 0
        self.closed = 0
        self.hung = 0


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four random edits: a byte flipped, a run inserted or dropped, a cut."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(4)
        at = rng.randrange(len(out) + 1)
        if kind == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif kind == 1:
            out[at:at] = rng.choice([b"\r\n", b"\n", b":", b" ", b"\0", b"0" * 12,
                                     bytes(rng.randrange(256) for _ in range(8))])
        elif kind == 2:
            del out[at:at + rng.randint(1, 16)]
        else:
            del out[at:]
    return bytes(out)


def mutator(port: int, code: Path, stop_at: float, seen: Mutations, seed: int) -> None:
    rng = random.Random(seed)
    body = json.dumps({"path": str(code / "hello"), "file": "index.py"}).encode()
    valid = (b"POST / HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
             b"x-internal-challenge: " + KEY.encode() + b"\r\nContent-Length: " +
             str(len(body)).encode() + b"\r\n\r\n" + body)
    while time.monotonic() < stop_at:
        data = mutate(rng, valid)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                got = b""
                while chunk := sock.recv(65536):
                    got += chunk
            outcome = "answered" if got.startswith(b"HTTP/1.1 ") else "closed"
        except socket.timeout:
            outcome = "hung"
        except OSError:
            outcome = "closed"  # reset by the server: a refusal
        with seen.lock:
            setattr(seen, outcome, getattr(seen, outcome) + 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--mutators", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bin", default=str(REPO / "build" / "pyrt"))
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="pyrt-soak-"))
    os.chmod(base, 0o755)  # pyrt's workers, each a uid of its own, read the code here
    code = base / "code"
    for name, source in FUNCTIONS.items():
        (code / name).mkdir(parents=True)
        (code / name / "index.py").write_text(source)
    log_path = base / "server.log"
    port = free_port()
    env = dict(os.environ, INTERNAL_RUNTIME_KEY=KEY)
    server, _ = spawn([args.bin, "serve", "--code-dir", str(code), "--host", "127.0.0.1",
                       "--port", str(port), "--workers", str(args.workers), "--max-body", "1M",
                       "--async-slots", "16"],
                      env, log_path)
    try:
        if not wait_healthy(port, 10, lambda: server.poll() is None):
            print("soak: server did not become healthy", file=sys.stderr)
            return 1

        totals = Totals()
        stop_at = time.monotonic() + args.seconds
        mutations = Mutations()
        threads = [threading.Thread(target=client, args=(port, code, stop_at, totals, i))
                   for i in range(args.clients)]
        threads += [threading.Thread(target=mutator,
                                     args=(port, code, stop_at, mutations, 1000 + i))
                    for i in range(args.mutators)]
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
    print(f"soak: mutated requests: answered={mutations.answered} "
          f"closed={mutations.closed} hung={mutations.hung}")
    print(f"soak: master RSS KiB: start={rss[0] if rss else 0} max={max(rss, default=0)} "
          f"end={rss[-1] if rss else 0}")
    print(f"soak: server exit status {rc}, {len(alerts)} alert line(s), log {log_path}")
    failed = (totals.lost > 0 or bool(totals.unexpected) or rc != 0 or bool(alerts)
              or mutations.hung > 0)
    for u in totals.unexpected:
        print(f"soak: unexpected answer {u}")
    for a in alerts[:5]:
        print(f"soak: {a}")
    print(f"{0 if failed else 1} passed, {1 if failed else 0} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
