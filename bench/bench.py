#!/usr/bin/env python3
"""pyrt's benchmark: pyrt against the anchors and a C ceiling, in one run, one machine.

    make bench                    # installs the servers, builds, runs this (~10-15 min)
    make bench-smoke              # pyrt and the C ceiling, one short run, nothing installed
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

Writes latest.md, latest.json and latest.tsv into --out. Python 3 stdlib only.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
APPS = BENCH / "apps"
FUNCTIONS = BENCH / "functions"
LUA = BENCH / "post.lua"
CEILING_SRC = BENCH / "ceiling.c"
PYTHON = "/usr/bin/python3"
HOST = "127.0.0.1"
KEY = "bench-internal-runtime-key"
SERVER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
STALL_MS = 1000
FRESH_TARGET_MS = 5.0

ALL_SERVERS = ["ceiling", "pyrt", "uwsgi", "uvicorn", "aiohttp", "gunicorn", "flask"]
ANCHORS = ["uwsgi", "uvicorn", "aiohttp", "gunicorn", "flask"]

UPSTREAM_ANSWER = {"normal": "Hello World!", "env1": "Hello World!", "payload": "Hello World! 2"}


# --------------------------------------------------------------------------- processes

def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def become_subreaper() -> None:
    """Orphans of the servers are re-parented here, so none can escape the final check."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def proc_stat(pid: int) -> Optional[list[str]]:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root: int) -> list[int]:
    """root and every live process below it (by parent pid)."""
    kids: dict[int, list[int]] = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None and st[0] not in ("Z", "X"):
            kids.setdefault(int(st[1]), []).append(pid)
    out: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        if proc_stat(pid) is None:
            continue
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def identity(pid: int) -> Optional[tuple[int, str]]:
    """(pid, start time): tells a process from a later one that reuses its pid."""
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return None
    return pid, st[19]


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime (and those of reaped children) summed over pids."""
    ticks = 0
    for pid in pids:
        st = proc_stat(pid)
        if st is not None:
            ticks += int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])
    return ticks / CLK_TCK


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        if m:
            total += int(m.group(1))
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- HTTP client

def http_request(port: int, body: bytes, timeout: float,
                 on_connect: Optional[Callable[[int], None]] = None) -> tuple[int, bytes, float]:
    """One POST on a fresh connection: (status, body, seconds from connect to the end of
    the answer). Raises OSError (refused, reset, timed out) or ValueError (bad answer)."""
    start = time.monotonic()
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if on_connect is not None:
            on_connect(s.getsockname()[1])
        head = (f"POST / HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
                f"x-internal-challenge: {KEY}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        s.sendall(head + body)
        s.settimeout(max(0.001, timeout - (time.monotonic() - start)))
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ValueError("connection closed before the answer's head")
            buf += chunk
        raw_head, rest = buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(rest) < length:
                chunk = s.recv(max(65536, length - len(rest)))
                if not chunk:
                    raise ValueError("connection closed in the answer's body")
                rest += chunk
            data = rest[:length]
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            data = _read_chunked(s, rest)
        else:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
            data = rest
    return status, data, time.monotonic() - start


def _read_chunked(s: socket.socket, buf: bytes) -> bytes:
    out = b""
    while True:
        while b"\r\n" not in buf:
            buf += s.recv(65536)
        size_line, buf = buf.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        while len(buf) < size + 2:
            chunk = s.recv(65536)
            if not chunk:
                raise ValueError("connection closed in a chunk")
            buf += chunk
        if size == 0:
            return out
        out += buf[:size]
        buf = buf[size + 2:]


# --------------------------------------------------------------------------- servers

@dataclass
class Spec:
    """How to start one server."""
    name: str
    label: str
    argv: Callable[[int, int], list[str]]     # (port, workers) -> command line
    python: bool = True                       # runs the functions (False: the C ceiling)
    multi_worker: bool = True                 # takes a worker count
    packages: tuple[str, ...] = ()
    note: str = ""


@dataclass
class Server:
    spec: Spec
    port: int
    workers: int
    log_path: Path
    argv: list[str]
    env: dict[str, str]
    proc: "subprocess.Popen[bytes]"
    started: float
    seen: set[tuple[int, str]] = field(default_factory=set)
    marks: list[tuple[int, str]] = field(default_factory=lambda: [(0, "start-up")])

    def mark(self, phase: str) -> None:
        """Log lines from here on belong to phase (for scan_log)."""
        try:
            self.marks.append((self.log_path.stat().st_size, phase))
        except OSError:
            pass

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tree(self) -> list[int]:
        pids = descendants(self.pid) if self.proc.poll() is None else []
        for pid in pids:
            ident = identity(pid)
            if ident is not None:
                self.seen.add(ident)
        return pids

    def alive(self) -> bool:
        return self.proc.poll() is None

    def command(self) -> str:
        extra = {k: v for k, v in self.env.items()
                 if self.spec.python and k in ("INTERNAL_RUNTIME_KEY", "BENCH_CODE_DIR")}
        return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in sorted(extra.items())),
                         shlex.join(self.argv)])

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, grace: float = STOP_TIMEOUT, hung: bool = False) -> tuple[list[str], str]:
        """SIGTERM to the main process, wait, then SIGKILL to the process group.
        Returns (processes left behind, a note when SIGTERM was not enough). hung: a
        worker is known to be stuck, so needing SIGKILL is expected."""
        self.tree()
        problems = []
        note = ""
        if self.proc.poll() is None:
            # The main process only: each server stops its own workers (a SIGTERM to the
            # whole group at once can wedge gunicorn's arbiter). The group gets SIGKILL.
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                if not hung:
                    note = (f"{self.log_path.stem}: did not exit within {grace:.0f} s of "
                            f"SIGTERM; killed. Log tail: "
                            + " | ".join(self.log_tail(3).splitlines()))
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        OWN_CHILDREN.discard(self.pid)
        deadline = time.monotonic() + 3
        left: list[tuple[int, str]] = []
        while time.monotonic() < deadline:
            left = [ident for ident in self.seen if identity(ident[0]) == ident]
            if not left:
                break
            time.sleep(0.05)
        for pid, _ in left:
            problems.append(f"{self.spec.name}: process {pid} left behind; killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        problems.extend(reap_orphans(self.spec.name))
        return problems, note


# The servers this script started and has not stopped yet: never taken for orphans.
OWN_CHILDREN: set[int] = set()


def reap_orphans(name: str) -> list[str]:
    """Processes re-parented to this script (it is a subreaper): killed and reaped."""
    problems = []
    me = os.getpid()
    for pid in all_pids():
        st = proc_stat(pid)
        if st is None or int(st[1]) != me or pid in OWN_CHILDREN:
            continue
        if st[0] not in ("Z", "X"):
            problems.append(f"{name}: orphan {pid} re-parented to the benchmark; killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return problems


def make_specs(pyrt_bin: Path, ceiling_bin: Path, code: Path) -> dict[str, Spec]:
    apps = str(APPS)

    def pyrt(port: int, n: int) -> list[str]:
        return [str(pyrt_bin), "serve", "--code-dir", str(code), "--host", HOST,
                "--port", str(port), "--workers", str(n)]

    return {
        "ceiling": Spec("ceiling", "C ceiling (epoll, no Python)",
                        lambda port, n: [str(ceiling_bin), HOST, str(port), str(n)],
                        python=False),
        "pyrt": Spec("pyrt", "pyrt", pyrt,
                     note="default logging (info: one access line per request, stderr to a file)"),
        "uwsgi": Spec("uwsgi", "uWSGI http11-socket",
                      lambda port, n: ["/usr/bin/uwsgi", "--strict", "--plugin", "python3",
                                       "--http11-socket", f"{HOST}:{port}", "--master",
                                       "--processes", str(n), "--single-interpreter",
                                       "--need-app", "--die-on-term", "--disable-logging",
                                       "--wsgi-file", f"{apps}/wsgi_app.py"],
                      packages=("uwsgi-core", "uwsgi-plugin-python3")),
        "uvicorn": Spec("uvicorn", "uvicorn + uvloop + httptools",
                        lambda port, n: [PYTHON, "-m", "uvicorn", "--host", HOST,
                                         "--port", str(port), "--workers", str(n),
                                         "--loop", "uvloop", "--http", "httptools",
                                         "--no-access-log", "--app-dir", apps, "asgi_app:app"],
                        packages=("python3-uvicorn", "python3-uvloop", "python3-httptools")),
        "aiohttp": Spec("aiohttp", "gunicorn + aiohttp worker (open-runtimes v5 stack)",
                        lambda port, n: ["/usr/bin/gunicorn", "--workers", str(n),
                                         "--worker-class", "aiohttp.GunicornWebWorker",
                                         "--bind", f"{HOST}:{port}", "--chdir", apps,
                                         "aiohttp_app:app"],
                        packages=("gunicorn", "python3-aiohttp")),
        "gunicorn": Spec("gunicorn", "gunicorn sync",
                         lambda port, n: ["/usr/bin/gunicorn", "--workers", str(n),
                                          "--worker-class", "sync", "--bind", f"{HOST}:{port}",
                                          "--chdir", apps, "wsgi_app:app"],
                         packages=("gunicorn",),
                         note="sync workers close the connection after each answer"),
        "flask": Spec("flask", "seed: Flask dev server, re-import per request",
                      lambda port, n: [PYTHON, "-m", "flask", "--app", f"{apps}/seed_flask.py",
                                       "run", "--host", HOST, "--port", str(port)],
                      multi_worker=False, packages=("python3-flask", "python3-werkzeug"),
                      note="one process (threaded), as the seed ran it; no worker count"),
    }


class Lab:
    """Starts servers, remembers their command lines, stops them, collects problems."""

    def __init__(self, specs: dict[str, Spec], work: Path, code: Path) -> None:
        self.specs = specs
        self.work = work
        self.code = code
        self.count = 0
        self.problems: list[str] = []
        self.notes: dict[str, list[str]] = {}
        self.commands: dict[str, str] = {}

    def start(self, name: str, workers: int, extra: tuple[str, ...] = (),
              tag: str = "") -> Server:
        spec = self.specs[name]
        port = free_port()
        argv = spec.argv(port, workers) + list(extra)
        env = {"PATH": SERVER_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
               "INTERNAL_RUNTIME_KEY": KEY, "BENCH_CODE_DIR": str(self.code)}
        self.count += 1
        log_path = self.work / f"{self.count:02d}-{name}{tag}.log"
        with open(log_path, "wb") as out:
            started = time.monotonic()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env=env, cwd=str(self.work), start_new_session=True)
        OWN_CHILDREN.add(proc.pid)
        return Server(spec, port, workers, log_path, argv, env, proc, started)

    def stop(self, server: Server, grace: float = STOP_TIMEOUT, hung: bool = False) -> None:
        """Stops it; anything left behind is a problem of the run. pyrt not stopping on
        SIGTERM is one too (the contract says it does); for the others it is a note."""
        left, note = server.stop(grace, hung)
        self.problems.extend(left)
        if note and server.spec.name == "pyrt":
            self.problems.append(f"pyrt {note}")
        elif note:
            self.notes.setdefault(server.spec.name, []).append(note)

    def scan_log(self, server: Server, expect_timeouts: bool = False) -> list[str]:
        """Lines worth a look in a server's log, grouped by the phase they were written
        in (see Server.mark) and counted: pyrt's warn/error/alert lines, the others'
        exceptions (a traceback's last line) and error lines."""
        counts: dict[tuple[str, str], int] = {}
        marks = server.marks
        pos = 0
        mi = 0
        try:
            fh = open(server.log_path, "rb")
        except OSError:
            return []
        with fh:
            for raw in fh:
                while mi + 1 < len(marks) and pos >= marks[mi + 1][0]:
                    mi += 1
                pos += len(raw)
                msg = classify_log_line(server.spec.name, raw.decode(errors="replace").rstrip(),
                                        expect_timeouts)
                if msg is not None:
                    key = (marks[mi][1], msg)
                    counts[key] = counts.get(key, 0) + 1
        return [f"{n}x in {phase}: {msg}" for (phase, msg), n in counts.items()]


PYRT_LOG_RE = re.compile(r"^\S+ \[(warn|error|alert)\] (.+?) \d+: (.*)$")
EXC_RE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b(:.*)?$")
ERROR_RE = re.compile(r"\[(ERROR|CRITICAL)\]|^ERROR:|segfault|Segmentation fault|"
                      r"\[uwsgi-body-read\]|Broken pipe|DAMN|MEMORY")


def classify_log_line(name: str, line: str, expect_timeouts: bool) -> Optional[str]:
    """The normalised message of a log line worth reporting, else None."""
    if name == "pyrt":
        m = PYRT_LOG_RE.match(line)
        if not m:
            return None
        msg = m.group(3)
        if expect_timeouts and ("timed out" in msg or "left behind" in msg):
            return None
        text = f"[{m.group(1)}] {m.group(2)}: {msg}"
    elif EXC_RE.match(line) or ERROR_RE.search(line):
        text = re.sub(r"^\[[^]]*\] \[\d+\] ", "", line)          # gunicorn's prefix
        text = re.sub(r"^\w{3} \w{3} +\d+ [\d:]+ \d{4} - ", "", text)  # uWSGI's
    else:
        return None
    text = re.sub(r"req=\S+", "req=…", text)
    text = re.sub(r"\d{3,}", "N", text)
    return text[:200]


def wait_answer(server: Server, body: bytes, check: Callable[[int, bytes], bool],
                timeout: float = START_TIMEOUT, poll: float = 0.002) -> float:
    """Seconds from the server's exec to the first answer that passes check; polls with
    fresh connections. Raises RuntimeError past timeout or if the server exits."""
    deadline = server.started + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.spec.name} exited with {server.proc.returncode}:\n"
                               f"{server.log_tail()}")
        try:
            status, data, _ = http_request(server.port, body, timeout=2.0)
            if check(status, data):
                return time.monotonic() - server.started
            last = f"status {status}: {data[:200]!r}"
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(poll)
    raise RuntimeError(f"{server.spec.name} gave no good answer within {timeout:.0f} s "
                       f"(last: {last}):\n{server.log_tail()}")


# --------------------------------------------------------------------------- wrk

def run_wrk(port: int, conns: int, duration: int, body_file: Path,
            threads: Optional[int] = None) -> dict[str, Any]:
    threads = threads or max(1, min(conns, os.cpu_count() or 1))
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s",
           "--timeout", "10s", "-s", str(LUA), f"http://{HOST}:{port}/"]
    env = dict(os.environ, BENCH_BODY_FILE=str(body_file), BENCH_KEY=KEY)
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env, timeout=duration + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data: dict[str, Any] = json.loads(line[len("BENCH_JSON "):])
            secs = data["duration_us"] / 1e6
            data["rps"] = data["requests"] / secs if secs > 0 else 0.0
            data["error_count"] = sum(data["errors"].values())
            return data
    raise RuntimeError(f"wrk gave no result (exit {proc.returncode}): {proc.stderr[-500:]}"
                       f"{proc.stdout[-500:]}")


class WrkBackground:
    """wrk running in a thread, for the measurements taken while it holds its load."""

    def __init__(self, port: int, conns: int, duration: int, body_file: Path) -> None:
        self.result: Optional[dict[str, Any]] = None
        self.error: Optional[BaseException] = None
        self.started = time.monotonic()
        self.end = self.started + duration

        def go() -> None:
            try:
                self.result = run_wrk(port, conns, duration, body_file)
            except BaseException as exc:  # noqa: BLE001 - reported by join()
                self.error = exc
        self.thread = threading.Thread(target=go, daemon=True)
        self.thread.start()

    def join(self) -> dict[str, Any]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def ss_lastrcv(port: int) -> dict[int, int]:
    """{client port: ms since the server-side socket last received data} for the
    established connections to the server's port (ss omits lastrcv when it is 0)."""
    proc = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
                          capture_output=True, text=True, timeout=10)
    out: dict[int, int] = {}
    peer: Optional[int] = None
    for line in proc.stdout.splitlines():
        if line and not line[0].isspace():
            addrs = re.findall(r"\S+:(\d+)", line)
            peer = int(addrs[1]) if len(addrs) >= 2 else None
            if peer is not None:
                out[peer] = 0
        elif peer is not None:
            m = re.search(r"\blastrcv:(\d+)", line)
            out[peer] = int(m.group(1)) if m else 0
    return out


# --------------------------------------------------------------------------- settings

@dataclass
class Settings:
    servers: list[str]
    runs: int
    duration: int
    concurrency: list[int]
    fairness_conns: int
    fairness_duration: int
    payload_sizes: list[int]
    payload_conns: int
    payload_duration: int
    cold_runs: int
    workers: int
    extra_workers: int
    runaway_runs: int
    runaway_timeout: float
    warmup: int
    smoke: bool


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper().removesuffix("IB").removesuffix("B"))
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}[m.group(2)]


def size_label(n: int) -> str:
    for unit, div in (("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"


# --------------------------------------------------------------------------- measurements

class Bench:
    def __init__(self, settings: Settings, lab: Lab, pyrt_bin: Path) -> None:
        self.s = settings
        self.lab = lab
        self.pyrt_bin = pyrt_bin
        self.results: dict[str, dict[str, Any]] = {n: {"notes": []} for n in settings.servers}
        self.bodies: dict[str, Path] = {}
        code = lab.code
        self.upstream = json.dumps({
            "path": str(code / "upstream"), "file": "index.py",
            "env": {"ENV1": "Hello World!"}, "payload": "Hello World! 2",
            "timeout": 60, "headers": {"test": "test1"}}).encode()
        self.body_file("upstream", self.upstream)

    def body_file(self, name: str, data: bytes) -> Path:
        path = self.lab.work / f"body-{name}.json"
        path.write_bytes(data)
        self.bodies[name] = path
        return path

    def note(self, name: str, text: str) -> None:
        self.results[name]["notes"].append(text)
        log(f"note: {name}: {text}")

    def log_notes(self, name: str, srv: Server, prefix: str,
                  expect_timeouts: bool = False) -> None:
        for line in self.lab.scan_log(srv, expect_timeouts):
            self.note(name, f"{prefix}log: {line}")

    def good_upstream(self, name: str) -> Callable[[int, bytes], bool]:
        """The ceiling answers anything; the others must give the upstream answer."""
        if not self.lab.specs[name].python:
            return lambda status, data: status == 200

        def check(status: int, data: bytes) -> bool:
            if status != 200:
                return False
            try:
                return bool(json.loads(data) == UPSTREAM_ANSWER)
            except ValueError:
                return False
        return check

    def python_servers(self) -> list[str]:
        return [n for n in self.s.servers if self.lab.specs[n].python]

    # ---- cold start and memory per worker
    def cold_start(self) -> None:
        times: dict[str, list[float]] = {n: [] for n in self.s.servers}
        for r in range(self.s.cold_runs):
            for name in self.s.servers:
                if "failed" in self.results[name]:
                    continue
                srv = self.lab.start(name, self.s.workers, tag=f"-cold{r}")
                try:
                    secs = wait_answer(srv, self.upstream, self.good_upstream(name))
                    times[name].append(secs * 1000)
                    if r == self.s.cold_runs - 1:
                        run_wrk(srv.port, 8, self.s.warmup, self.bodies["upstream"])
                        time.sleep(0.3)
                        self.results[name]["pss_fresh_kib"] = {
                            str(self.s.workers): pss_kib(srv.tree())}
                except RuntimeError as exc:
                    self.results[name]["failed"] = str(exc)
                    self.note(name, f"failed to start: {exc}")
                finally:
                    self.lab.stop(srv)
                    self.log_notes(name, srv, "cold start: ")
        for name, ts in times.items():
            if ts:
                self.results[name]["cold_start_ms"] = summary(ts)
                log(f"cold start {name}: {statistics.median(ts):.0f} ms")
        n2, n4 = self.s.workers, self.s.workers + self.s.extra_workers
        for name in self.s.servers:
            if "failed" in self.results[name] or not self.lab.specs[name].multi_worker:
                continue
            if self.s.extra_workers <= 0:
                continue
            srv = self.lab.start(name, n4, tag=f"-w{n4}")
            try:
                wait_answer(srv, self.upstream, self.good_upstream(name))
                run_wrk(srv.port, 2 * n4, self.s.warmup, self.bodies["upstream"])
                time.sleep(0.3)
                fresh = self.results[name].setdefault("pss_fresh_kib", {})
                fresh[str(n4)] = pss_kib(srv.tree())
                if str(n2) in fresh:
                    per = (fresh[str(n4)] - fresh[str(n2)]) / (n4 - n2)
                    self.results[name]["pss_per_worker_kib"] = per
                    log(f"PSS {name}: {fresh[str(n2)] / 1024:.1f} MiB with {n2}, "
                        f"+{per / 1024:.2f} MiB per extra worker")
            except RuntimeError as exc:
                self.note(name, f"{n4}-worker instance: {exc}")
            finally:
                self.lab.stop(srv)
                self.log_notes(name, srv, f"{n4}-worker instance: ")

    # ---- throughput, fairness, memory after load, payload scaling
    def main_instances(self) -> dict[str, Server]:
        servers: dict[str, Server] = {}
        for name in self.s.servers:
            if "failed" in self.results[name]:
                continue
            srv = self.lab.start(name, self.s.workers)
            try:
                wait_answer(srv, self.upstream, self.good_upstream(name))
                srv.mark("warm-up")
                run_wrk(srv.port, 16, self.s.warmup, self.bodies["upstream"])
                servers[name] = srv
                self.results[name]["command"] = srv.command()
                self.lab.commands[name] = srv.command()
            except RuntimeError as exc:
                self.results[name]["failed"] = str(exc)
                self.note(name, f"failed to start: {exc}")
                self.lab.stop(srv)
        return servers

    def throughput(self, servers: dict[str, Server]) -> None:
        names = list(servers)
        for srv in servers.values():
            srv.mark("throughput")
        raw: dict[str, dict[str, list[dict[str, Any]]]] = {
            n: {str(c): [] for c in self.s.concurrency} for n in names}
        for r in range(self.s.runs):
            order = names[r % len(names):] + names[:r % len(names)] if names else []
            for c in self.s.concurrency:
                for name in order:
                    srv = servers[name]
                    pids = srv.tree()
                    cpu0 = cpu_seconds(pids)
                    try:
                        res = run_wrk(srv.port, c, self.s.duration, self.bodies["upstream"])
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        self.note(name, f"wrk c={c}: {exc}")
                        continue
                    cpu1 = cpu_seconds(srv.tree())
                    res["cpu_s"] = cpu1 - cpu0
                    res["cpu_us_per_req"] = (res["cpu_s"] * 1e6 / res["requests"]
                                             if res["requests"] else None)
                    raw[name][str(c)].append(res)
                    log(f"run {r + 1}/{self.s.runs} c={c} {name}: {res['rps']:.0f} req/s, "
                        f"p99 {res['latency_us']['p99'] / 1000:.2f} ms, "
                        f"{res['error_count']} errors")
        for name in names:
            out: dict[str, Any] = {}
            for ck, runs in raw[name].items():
                if not runs:
                    continue
                out[ck] = {
                    "rps": summary([x["rps"] for x in runs]),
                    "p50_ms": statistics.median(x["latency_us"]["p50"] / 1000 for x in runs),
                    "p99_ms": statistics.median(x["latency_us"]["p99"] / 1000 for x in runs),
                    "mean_ms": statistics.median(x["latency_us"]["mean"] / 1000 for x in runs),
                    "cpu_us_per_req": median_or_none([x["cpu_us_per_req"] for x in runs]),
                    "errors": sum(x["error_count"] for x in runs),
                    "errors_by_kind": {k: sum(x["errors"][k] for x in runs)
                                       for k in runs[0]["errors"]},
                    "requests": sum(x["requests"] for x in runs),
                    "runs": runs,
                }
                if out[ck]["errors"]:
                    self.note(name, f"c={ck}: {out[ck]['errors']} wrk errors "
                                    f"{out[ck]['errors_by_kind']}")
            self.results[name]["throughput"] = out

    def fairness(self, name: str, srv: Server) -> None:
        conns, duration = self.s.fairness_conns, self.s.fairness_duration
        fresh_ports: set[int] = set()
        max_rcv: dict[int, int] = {}
        fresh: list[float] = []
        fresh_fail: list[str] = []
        srv.mark("fairness")
        wrk = WrkBackground(srv.port, conns, duration, self.bodies["upstream"])
        stop_at = wrk.end - 0.3
        time.sleep(min(1.0, duration / 3))

        def sampler() -> None:
            while time.monotonic() < stop_at:
                try:
                    for peer, ms in ss_lastrcv(srv.port).items():
                        max_rcv[peer] = max(ms, max_rcv.get(peer, 0))
                except (OSError, subprocess.SubprocessError):
                    pass
                time.sleep(0.1)
        th = threading.Thread(target=sampler, daemon=True)
        has_ss = shutil.which("ss") is not None
        if has_ss:
            th.start()
        while time.monotonic() < stop_at - 0.2:
            try:
                status, _, secs = http_request(srv.port, self.upstream, timeout=5.0,
                                               on_connect=fresh_ports.add)
                if status == 200:
                    fresh.append(secs * 1000)
                else:
                    fresh_fail.append(f"status {status}")
            except (OSError, ValueError) as exc:
                fresh_fail.append(str(exc) or type(exc).__name__)
            time.sleep(0.25)
        if has_ss:
            th.join()
        res = wrk.join()
        wrk_rcv = {p: ms for p, ms in max_rcv.items() if p not in fresh_ports}
        stalled = sorted(ms for ms in wrk_rcv.values() if ms > STALL_MS)
        self.results[name]["fairness"] = {
            "conns": conns, "duration_s": duration, "rps": res["rps"],
            "wrk_errors": res["error_count"],
            "fresh_ms": summary(fresh) if fresh else None,
            "fresh_failed": len(fresh_fail), "fresh_fail_reasons": fresh_fail[:3],
            "connections_seen": len(wrk_rcv), "stalled": len(stalled) if has_ss else None,
            "max_lastrcv_ms": max(wrk_rcv.values()) if wrk_rcv else None,
        }
        log(f"fairness {name}: fresh client median "
            f"{statistics.median(fresh) if fresh else float('nan'):.1f} ms "
            f"max {max(fresh) if fresh else float('nan'):.1f} ms, {len(fresh_fail)} failed; "
            f"{len(stalled)}/{len(wrk_rcv)} connections stalled > {STALL_MS} ms")

    def payload(self, name: str, srv: Server) -> None:
        out: dict[str, Any] = {}
        srv.mark("payload scaling")
        for size in self.s.payload_sizes:
            key = f"echo-{size}"
            if key not in self.bodies:
                body = json.dumps({"path": str(self.lab.code / "echo"), "file": "index.py",
                                   "payload": "x" * size, "timeout": 60}).encode()
                self.body_file(key, body)
            check = "ok"
            try:
                status, data, _ = http_request(srv.port, self.bodies[key].read_bytes(), 60.0)
                if status != 200 or len(data) < size:
                    check = f"status {status}, {len(data)} bytes: {data[:120]!r}"
            except (OSError, ValueError) as exc:
                check = str(exc)
            if check != "ok":
                self.note(name, f"echo {size_label(size)}: {check}")
                out[str(size)] = {"check": check}
                continue
            try:
                res = run_wrk(srv.port, self.s.payload_conns, self.s.payload_duration,
                              self.bodies[key])
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                self.note(name, f"echo {size_label(size)} wrk: {exc}")
                continue
            out[str(size)] = {"check": check, "rps": res["rps"],
                              "p99_ms": res["latency_us"]["p99"] / 1000,
                              "errors": res["error_count"]}
            log(f"payload {name} {size_label(size)}: {res['rps']:.0f} req/s, "
                f"p99 {res['latency_us']['p99'] / 1000:.1f} ms, {res['error_count']} errors")
        self.results[name]["payload"] = out

    # ---- runaway code
    def runaway(self, name: str) -> None:
        is_pyrt = name == "pyrt"
        extra = ("--log-level", "debug") if is_pyrt else ()
        srv = self.lab.start(name, self.s.workers, extra=extra, tag="-runaway")
        deadline = self.s.runaway_timeout
        wait = deadline + (3.0 if not is_pyrt else 2.0)
        spin = json.dumps({"path": str(self.lab.code / "spin"), "file": "index.py",
                           "timeout": deadline}).encode()
        runs: list[dict[str, Any]] = []
        try:
            wait_answer(srv, self.upstream, self.good_upstream(name))
            srv.mark("runaway")
            for _ in range(self.s.runaway_runs if is_pyrt else 1):
                runs.append(self._runaway_once(srv, spin, wait))
                time.sleep(0.3)
        except RuntimeError as exc:
            self.note(name, f"runaway: {exc}")
        finally:
            if is_pyrt:
                self.lab.stop(srv)
            else:
                self.lab.stop(srv, grace=3.0, hung=True)
            self.log_notes(name, srv, "runaway instance: ", expect_timeouts=True)
        if not runs:
            return
        out: dict[str, Any] = {"timeout_s": deadline, "runs": runs}
        late = [r["late_ms"] for r in runs if r["answered"]]
        out["answered"] = sum(1 for r in runs if r["answered"])
        out["late_ms"] = summary(late) if late else None
        out["normal_ok"] = sum(r["normal_ok"] for r in runs)
        out["normal_failed"] = sum(r["normal_failed"] for r in runs)
        out["normal_max_ms"] = max(r["normal_max_ms"] for r in runs)
        if is_pyrt:
            ready = kill_to_ready_ms(srv.log_path)
            out["kill_to_ready_ms"] = summary(ready) if ready else None
        self.results[name]["runaway"] = out
        log(f"runaway {name}: answered {out['answered']}/{len(runs)}, late "
            f"{out['late_ms']}, normal ok {out['normal_ok']} failed {out['normal_failed']}, "
            f"kill->ready {out.get('kill_to_ready_ms')}")

    def _runaway_once(self, srv: Server, spin: bytes, wait: float) -> dict[str, Any]:
        answer: dict[str, Any] = {}

        def send_spin() -> None:
            start = time.monotonic()
            try:
                status, data, _ = http_request(srv.port, spin, timeout=wait)
                answer.update(status=status, body=data[:200].decode(errors="replace"))
            except (OSError, ValueError) as exc:
                answer.update(status=None, body=str(exc) or type(exc).__name__)
            answer["secs"] = time.monotonic() - start
        th = threading.Thread(target=send_spin, daemon=True)
        th.start()
        ok = failed = 0
        max_ms = 0.0
        reasons: list[str] = []
        end: Optional[float] = None
        while end is None or time.monotonic() < end:
            try:
                status, data, secs = http_request(srv.port, self.upstream, timeout=1.0)
                if status == 200:
                    ok += 1
                    max_ms = max(max_ms, secs * 1000)
                else:
                    failed += 1
                    reasons.append(f"status {status}")
            except (OSError, ValueError) as exc:
                failed += 1
                reasons.append(str(exc) or type(exc).__name__)
            time.sleep(0.02)
            if end is None and not th.is_alive():
                end = time.monotonic() + 0.5
        th.join()
        answered = answer.get("status") is not None
        late = (answer["secs"] - self.s.runaway_timeout) * 1000
        return {"answered": answered, "status": answer.get("status"),
                "answer": answer.get("body"), "secs": answer["secs"],
                "late_ms": late if answered else None,
                "normal_ok": ok, "normal_failed": failed, "normal_max_ms": max_ms,
                "normal_fail_reasons": reasons[:3]}

    # ---- the whole run
    def run(self) -> None:
        for name in self.s.servers:
            self.results[name]["python"] = self.lab.specs[name].python
            self.results[name]["label"] = self.lab.specs[name].label
            if self.lab.specs[name].note:
                self.results[name]["setting_note"] = self.lab.specs[name].note
        log("phase 1: cold start and memory per worker")
        self.cold_start()
        log("phase 2: main instances")
        servers = self.main_instances()
        try:
            log("phase 3: throughput rounds")
            self.throughput(servers)
            log("phase 4: fairness under load, memory after load")
            for name, srv in servers.items():
                self.fairness(name, srv)
                time.sleep(0.3)
                self.results[name]["pss_after_load_kib"] = pss_kib(srv.tree())
                self.results[name]["processes"] = len(srv.tree())
            log("phase 5: payload scaling")
            for name, srv in servers.items():
                if self.lab.specs[name].python and self.s.payload_sizes:
                    self.payload(name, srv)
        finally:
            for name, srv in servers.items():
                srv.mark("shutdown")
                self.lab.stop(srv)
                self.log_notes(name, srv, "")
        log("phase 6: runaway code")
        try:
            for name in self.python_servers():
                if "failed" not in self.results[name] and self.s.runaway_runs > 0:
                    self.runaway(name)
        finally:
            for name, notes in self.lab.notes.items():
                for text in notes:
                    self.note(name, text)


def kill_to_ready_ms(log_path: Path) -> list[float]:
    """From pyrt's debug log: each "killing worker" line to the next "worker N ready"."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for i, line in enumerate(lines):
        if "killing worker" in line:
            for later in lines[i + 1:]:
                if re.search(r"worker \d+ ready$", later):
                    out.append((stamp(later) - stamp(line)) * 1000)
                    break
    return out


def stamp(line: str) -> float:
    return datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def median_or_none(values: list[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


# --------------------------------------------------------------------------- environment

def dpkg_version(pkg: str) -> Optional[str]:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                          text=True)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": model, "kernel": platform.release(), "machine": platform.machine(),
            "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
            "mem_total_mib": _mem_total_mib()}


def _mem_total_mib() -> Optional[int]:
    try:
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        return int(m.group(1)) // 1024 if m else None
    except OSError:
        return None


def versions(specs: dict[str, Spec], names: list[str], pyrt_bin: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pkgs = {"wrk", "python3.11", "libpython3.11"}
    for n in names:
        pkgs.update(specs[n].packages)
    for pkg in sorted(pkgs):
        v = dpkg_version(pkg)
        if v:
            out[pkg] = v
    try:
        out["pyrt"] = subprocess.run([str(pyrt_bin), "--version"], capture_output=True,
                                     text=True, timeout=10).stdout.strip().removeprefix("pyrt ")
    except (OSError, subprocess.SubprocessError):
        out["pyrt"] = None
    try:
        cc = subprocess.run(["cc", "--version"], capture_output=True, text=True, timeout=10)
        out["cc (ceiling)"] = cc.stdout.splitlines()[0] if cc.stdout else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def build_ceiling(target: Path) -> None:
    if target.exists() and target.stat().st_mtime >= CEILING_SRC.stat().st_mtime:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", str(CEILING_SRC), "-o",
                    str(target)], check=True)


# --------------------------------------------------------------------------- report

def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


def get(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def fmt(v: Optional[float], spec: str = ".0f", suffix: str = "") -> str:
    return "–" if v is None else f"{v:{spec}}{suffix}"


def analyse(results: dict[str, dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """Ratios pyrt/anchor, % of the ceiling, and the issue's targets."""
    out: dict[str, Any] = {"ratios": {}, "pct_of_ceiling": {}, "targets": []}
    concs = [str(c) for c in settings.concurrency]
    for name, r in results.items():
        pct = {}
        for c in concs:
            v = get(r, "throughput", c, "rps", "median")
            ceil = get(results, "ceiling", "throughput", c, "rps", "median")
            x = ratio(v, ceil)
            pct[c] = x * 100 if x is not None else None
        out["pct_of_ceiling"][name] = pct
    if "pyrt" not in results:
        return out
    p = results["pyrt"]
    for name, r in results.items():
        if name == "pyrt":
            continue
        rr: dict[str, Any] = {}
        for c in concs:
            rr[f"rps_c{c}"] = ratio(get(p, "throughput", c, "rps", "median"),
                                    get(r, "throughput", c, "rps", "median"))
            rr[f"p99_c{c}"] = ratio(get(p, "throughput", c, "p99_ms"),
                                    get(r, "throughput", c, "p99_ms"))
            rr[f"cpu_c{c}"] = ratio(get(p, "throughput", c, "cpu_us_per_req"),
                                    get(r, "throughput", c, "cpu_us_per_req"))
        rr["cold_start"] = ratio(get(p, "cold_start_ms", "median"),
                                 get(r, "cold_start_ms", "median"))
        rr["pss_after_load"] = ratio(get(p, "pss_after_load_kib"), get(r, "pss_after_load_kib"))
        out["ratios"][name] = rr

    targets: list[dict[str, Any]] = out["targets"]

    def target(what: str, value: Optional[float], ok: Optional[bool], goal: str,
               shown: str) -> None:
        targets.append({"target": what, "goal": goal, "value": value,
                        "shown": shown, "ok": ok})

    for c in ("16", "64"):
        v = get(p, "throughput", c, "rps", "median")
        best = [get(results, a, "throughput", c, "rps", "median") for a in ("uwsgi", "uvicorn")]
        best_v = max((b for b in best if b is not None), default=None)
        x = ratio(v, best_v)
        target(f"c={c} throughput vs best of uWSGI, uvicorn", x,
               None if x is None else x >= 1.2, "≥ 1.2x", fmt(x, ".2f", "x"))
        pc = out["pct_of_ceiling"]["pyrt"].get(c)
        target(f"c={c} throughput, % of the C ceiling", pc,
               None if pc is None else pc >= 40, "≥ 40%", fmt(pc, ".0f", "%"))
        x = ratio(v, get(results, "flask", "throughput", c, "rps", "median"))
        target(f"c={c} throughput vs seed Flask", x, None if x is None else x >= 30,
               "≥ 30x", fmt(x, ".0f", "x"))
    c64 = str(settings.fairness_conns)
    rps64 = get(p, "throughput", c64, "rps", "median")
    p99 = get(p, "throughput", c64, "p99_ms")
    if rps64 and p99 is not None:
        implied = int(c64) / rps64 * 1000
        target(f"c={c64} p99 vs implied mean latency ({c64} / req/s = {implied:.2f} ms)",
               p99 / implied, p99 < 2 * implied, "< 2x", f"{p99:.2f} ms = {p99 / implied:.2f}x")
    else:
        target(f"c={c64} p99 vs implied mean latency", None, None, "< 2x", "–")
    fresh_max = get(p, "fairness", "fresh_ms", "max")
    fresh_failed = get(p, "fairness", "fresh_failed")
    ok = None if fresh_max is None else fresh_max < FRESH_TARGET_MS and not fresh_failed
    target("fresh client under load (max)", fresh_max, ok, f"< {FRESH_TARGET_MS:.0f} ms",
           fmt(fresh_max, ".1f", " ms") + (f", {fresh_failed} failed" if fresh_failed else ""))
    st = get(p, "fairness", "stalled")
    target(f"wrk connections stalled > {STALL_MS} ms", st, None if st is None else st == 0,
           "0", fmt(st, "d"))
    cold = get(p, "cold_start_ms", "median")
    x = ratio(cold, get(results, "ceiling", "cold_start_ms", "median"))
    target("cold start vs C ceiling", x, None if x is None else x <= 2, "≤ 2x",
           fmt(cold, ".0f", " ms") + f" = {fmt(x, '.1f', 'x')}")
    x = ratio(cold, get(results, "uwsgi", "cold_start_ms", "median"))
    target("cold start vs uWSGI", x, None if x is None else x < 0.5, "< 0.5x", fmt(x, ".2f", "x"))
    pss = get(p, "pss_after_load_kib")
    target(f"PSS with {settings.workers} workers after load", pss,
           None if pss is None else pss < 20 * 1024, "< 20 MiB",
           fmt(pss and pss / 1024, ".1f", " MiB"))
    per = get(p, "pss_per_worker_kib")
    target("PSS per extra worker", per, None if per is None else per < 4 * 1024, "< 4 MiB",
           fmt(per and per / 1024, ".2f", " MiB"))
    late = get(p, "runaway", "late_ms", "max")
    answered = get(p, "runaway", "answered")
    runs = len(get(p, "runaway", "runs") or [])
    target("runaway answered after its deadline (max)", late,
           None if late is None else late <= 50 and answered == runs, "≤ 50 ms",
           fmt(late, ".1f", " ms") + (f" ({answered}/{runs} answered)" if runs else ""))
    ready = get(p, "runaway", "kill_to_ready_ms", "max")
    target("replacement worker ready after the kill (max)", ready,
           None if ready is None else ready <= 10, "≤ 10 ms", fmt(ready, ".1f", " ms"))
    nf = get(p, "runaway", "normal_failed")
    target("normal requests failed meanwhile", nf, None if nf is None else nf == 0, "0",
           fmt(nf, "d") + f" of {fmt((nf or 0) + (get(p, 'runaway', 'normal_ok') or 0), 'd')}"
           if nf is not None else "–")
    return out


def write_reports(out_dir: Path, doc: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out_dir / "latest.tsv").write_text(tsv(doc))
    (out_dir / "latest.md").write_text(markdown(doc))


def tsv(doc: dict[str, Any]) -> str:
    rows = [["server", "figure", "concurrency_or_size", "value", "unit"]]
    for name, r in doc["results"].items():
        for c, t in (r.get("throughput") or {}).items():
            rows += [[name, "rps_median", c, f"{t['rps']['median']:.1f}", "req/s"],
                     [name, "rps_min", c, f"{t['rps']['min']:.1f}", "req/s"],
                     [name, "rps_max", c, f"{t['rps']['max']:.1f}", "req/s"],
                     [name, "p50", c, f"{t['p50_ms']:.3f}", "ms"],
                     [name, "p99", c, f"{t['p99_ms']:.3f}", "ms"],
                     [name, "cpu_per_req", c, fmt(t["cpu_us_per_req"], ".1f"), "us"],
                     [name, "errors", c, str(t["errors"]), "count"]]
        f = r.get("fairness") or {}
        if f:
            rows += [[name, "fresh_client_median", str(f["conns"]),
                      fmt(get(f, "fresh_ms", "median"), ".2f"), "ms"],
                     [name, "fresh_client_max", str(f["conns"]),
                      fmt(get(f, "fresh_ms", "max"), ".2f"), "ms"],
                     [name, "stalled_connections", str(f["conns"]), str(f["stalled"]), "count"]]
        if r.get("cold_start_ms"):
            rows.append([name, "cold_start_median", "",
                         f"{r['cold_start_ms']['median']:.1f}", "ms"])
        if r.get("pss_after_load_kib") is not None:
            rows.append([name, "pss_after_load", "", str(r["pss_after_load_kib"]), "KiB"])
        if r.get("pss_per_worker_kib") is not None:
            rows.append([name, "pss_per_extra_worker", "",
                         f"{r['pss_per_worker_kib']:.0f}", "KiB"])
        for size, pl in (r.get("payload") or {}).items():
            if "rps" in pl:
                rows += [[name, "payload_rps", size, f"{pl['rps']:.1f}", "req/s"],
                         [name, "payload_p99", size, f"{pl['p99_ms']:.2f}", "ms"]]
        ra = r.get("runaway")
        if ra:
            rows += [[name, "runaway_answered", "", f"{ra['answered']}/{len(ra['runs'])}",
                      "count"],
                     [name, "runaway_late_max", "", fmt(get(ra, "late_ms", "max"), ".1f"), "ms"],
                     [name, "runaway_normal_failed", "", str(ra["normal_failed"]), "count"]]
            if "kill_to_ready_ms" in ra:
                rows.append([name, "runaway_kill_to_ready_max", "",
                             fmt(get(ra, "kill_to_ready_ms", "max"), ".1f"), "ms"])
    return "".join("\t".join(row) + "\n" for row in rows)


def markdown(doc: dict[str, Any]) -> str:
    res: dict[str, dict[str, Any]] = doc["results"]
    st = doc["settings"]
    an = doc["analysis"]
    m = doc["machine"]
    names = [n for n in ALL_SERVERS if n in res]
    concs = [str(c) for c in st["concurrency"]]
    L: list[str] = []
    L.append("# pyrt benchmark" + (" (smoke)" if st["smoke"] else ""))
    L.append("")
    L.append(f"{doc['date']} · {m['cpus']} CPUs ({m['cpus_usable']} usable) {m['cpu_model']} · "
             f"kernel {m['kernel']} · {m['mem_total_mib']} MiB · load average at start "
             f"{' '.join(m['loadavg_start'])} · pyrt {doc['versions'].get('pyrt')} at "
             f"{doc['git']['commit']}{' (uncommitted changes)' if doc['git']['dirty'] else ''}")
    L.append("")
    L.append(f"{st['workers']} worker processes each (the seed's Flask server: one threaded "
             f"process). wrk {st['runs']} run(s) x {st['duration']} s per concurrency, rounds "
             f"interleaved across servers; the upstream test request (keep-alive); medians, "
             f"spread as min–max. The machine is shared: absolute numbers are noisy, read the "
             f"ratios. Took {doc['elapsed_s']:.0f} s.")
    L.append("")
    L.append("## Throughput (req/s)")
    L.append("")
    head = ["server"] + [f"c={c}" for c in concs] + [f"% ceiling c={c}" for c in concs] + \
           [f"pyrt/x c={c}" for c in concs]
    L += table_head(head)
    starved = []
    for n in names:
        row = [res[n].get("label", n)]
        stalled = get(res[n], "fairness", "stalled") or 0
        if stalled:
            starved.append(f"{res[n].get('label', n)}: {stalled} of "
                           f"{get(res[n], 'fairness', 'connections_seen')}")
        for c in concs:
            t = get(res[n], "throughput", c)
            mark = " ‡" if stalled and c == str(st["fairness_conns"]) else ""
            row.append(f"{t['rps']['median']:.0f} ({t['rps']['min']:.0f}–{t['rps']['max']:.0f})"
                       f"{mark}" if t else "–")
        for c in concs:
            row.append(fmt(get(an, "pct_of_ceiling", n, c), ".0f", "%"))
        for c in concs:
            row.append(fmt(get(an, "ratios", n, f"rps_c{c}"), ".2f", "x") if n != "pyrt" else "")
        L.append(table_row(row))
    if starved:
        L.append("")
        L.append(f"‡ Connections starved in the fairness run (nothing for over {STALL_MS} ms): "
                 + "; ".join(starved) + ". That figure is what the other connections got, "
                 "and wrk's percentiles cover completed requests only.")
    L.append("")
    L.append("## Latency and CPU")
    L.append("")
    head = ["server"] + [f"p50 / p99 c={c} (ms)" for c in concs] + \
           [f"CPU/req c={c} (µs)" for c in concs] + ["wrk errors"]
    L += table_head(head)
    for n in names:
        row = [res[n].get("label", n)]
        for c in concs:
            t = get(res[n], "throughput", c)
            row.append(f"{t['p50_ms']:.2f} / {t['p99_ms']:.2f}" if t else "–")
        for c in concs:
            row.append(fmt(get(res[n], "throughput", c, "cpu_us_per_req"), ".0f"))
        errs = [get(res[n], "throughput", c, "errors") or 0 for c in concs]
        row.append(str(sum(errs)))
        L.append(table_row(row))
    L.append("")
    L.append(f"## Fairness under {st['fairness_conns']} connections, cold start, memory")
    L.append("")
    L += table_head(["server", "fresh client median / max (ms)", f"stalled > {STALL_MS} ms",
                     "max lastrcv (ms)", "cold start (ms)", "PSS after load (MiB)",
                     "per extra worker (MiB)", "processes"])
    for n in names:
        r = res[n]
        f = r.get("fairness") or {}
        fresh = (f"{f['fresh_ms']['median']:.1f} / {f['fresh_ms']['max']:.1f}"
                 if f.get("fresh_ms") else "–")
        if f.get("fresh_failed"):
            fresh += f" ({f['fresh_failed']} failed)"
        cold = r.get("cold_start_ms")
        L.append(table_row([
            r.get("label", n), fresh,
            f"{f['stalled']} of {f['connections_seen']}" if f and f["stalled"] is not None
            else "–",
            fmt(f.get("max_lastrcv_ms"), "d") if f else "–",
            f"{cold['median']:.0f} ({cold['min']:.0f}–{cold['max']:.0f})" if cold else "–",
            fmt(r.get("pss_after_load_kib") and r["pss_after_load_kib"] / 1024, ".1f"),
            fmt(r.get("pss_per_worker_kib") and r["pss_per_worker_kib"] / 1024, ".2f"),
            fmt(r.get("processes"), "d")]))
    sizes = [str(s) for s in st["payload_sizes"]]
    if sizes and any(res[n].get("payload") for n in names):
        L.append("")
        L.append(f"## Payload scaling (echo, c={st['payload_conns']}, "
                 f"{st['payload_duration']} s): req/s / p99 ms")
        L.append("")
        L += table_head(["server"] + [size_label(int(s)) for s in sizes])
        for n in names:
            pl = res[n].get("payload")
            if not pl:
                continue
            row = [res[n].get("label", n)]
            for s in sizes:
                e = pl.get(s)
                if e is None:
                    row.append("–")
                elif "rps" not in e:
                    row.append(f"failed: {e['check'][:60]}")
                else:
                    row.append(f"{e['rps']:.0f} / {e['p99_ms']:.1f}"
                               + (f" ({e['errors']} err)" if e["errors"] else ""))
            L.append(table_row(row))
    if any(res[n].get("runaway") for n in names):
        L.append("")
        L.append(f"## Runaway code (`while True: pass`, \"timeout\": {st['runaway_timeout']:g})")
        L.append("")
        L += table_head(["server", "answer", "after deadline (ms)", "replacement ready (ms)",
                         "normal requests meanwhile: ok / failed (max ms)"])
        for n in names:
            ra = res[n].get("runaway")
            if not ra:
                continue
            first = ra["runs"][0]
            if ra["answered"]:
                ans = f"{ra['answered']}/{len(ra['runs'])}: {first['status']} " \
                      f"{(first['answer'] or '')[:60]}"
            else:
                ans = f"none within {first['secs']:.1f} s ({(first['answer'] or '')[:40]})"
            late = ra.get("late_ms")
            ready = ra.get("kill_to_ready_ms")
            L.append(table_row([
                res[n].get("label", n), ans.replace("|", "\\|"),
                f"{late['median']:.1f} (max {late['max']:.1f})" if late else "–",
                f"{ready['median']:.1f} (max {ready['max']:.1f})" if ready else "–",
                f"{ra['normal_ok']} / {ra['normal_failed']} ({ra['normal_max_ms']:.1f})"]))
    if an["targets"]:
        L.append("")
        L.append("## pyrt's targets (issue 7)")
        L.append("")
        L += table_head(["target", "goal", "measured", ""])
        for t in an["targets"]:
            mark = "n/a" if t["ok"] is None else ("ok" if t["ok"] else "**missed**")
            L.append(table_row([t["target"], t["goal"], t["shown"], mark]))
    notes = [(n, x) for n in names for x in res[n].get("notes", [])]
    if notes or doc["problems"]:
        L.append("")
        L.append("## Notes")
        L.append("")
        for n, x in notes:
            L.append(f"- {n}: {x}".replace("\n", " ")[:400])
        for x in doc["problems"]:
            L.append(f"- problem: {x}")
    L.append("")
    L.append("## Command lines")
    L.append("")
    L.append("Ports and paths are those of this run; `BENCH_CODE_DIR` is a scratch copy of "
             "`bench/functions`, byte-compiled.")
    L.append("")
    for n in names:
        cmd = res[n].get("command")
        if cmd:
            note = res[n].get("setting_note")
            L.append(f"- **{n}**{f' ({note})' if note else ''}: `{cmd}`")
    L.append(f"- **wrk**: `{doc['wrk_command']}`")
    L.append("")
    L.append("## Versions")
    L.append("")
    L.append(", ".join(f"{k} {v}" for k, v in doc["versions"].items()))
    L.append("")
    return "\n".join(L)


def table_head(cols: list[str]) -> list[str]:
    return [table_row(cols), "|" + "|".join("---" for _ in cols) + "|"]


def table_row(cols: list[str]) -> str:
    return "| " + " | ".join(cols) + " |"


# --------------------------------------------------------------------------- main

def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true",
                    help="pyrt and the ceiling only, one short run of each figure")
    ap.add_argument("--servers", help=f"comma-separated, from {','.join(ALL_SERVERS)}")
    ap.add_argument("--runs", type=int, help="wrk runs per concurrency (default 3)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 5)")
    ap.add_argument("--concurrency", help="comma-separated connection counts (default 1,16,64)")
    ap.add_argument("--payload-sizes", help="comma-separated, e.g. 1K,64K,1M,10M")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, help="results folder (default bench/results, "
                                             "build/bench-smoke with --smoke)")
    ap.add_argument("--pyrt-bin", type=Path,
                    default=Path(os.environ.get("PYRT_BIN", REPO / "build" / "pyrt")))
    ap.add_argument("--ceiling-bin", type=Path, default=REPO / "build" / "bench" / "ceiling",
                    help="built from bench/ceiling.c if missing or older")
    ap.add_argument("--keep-work", action="store_true", help="keep the scratch folder (logs)")
    return ap.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    smoke = args.smoke
    servers = (args.servers.split(",") if args.servers
               else ["ceiling", "pyrt"] if smoke else list(ALL_SERVERS))
    for s in servers:
        if s not in ALL_SERVERS:
            raise SystemExit(f"bench: unknown server {s!r} (known: {', '.join(ALL_SERVERS)})")
    servers = [s for s in ALL_SERVERS if s in servers]
    conc = ([int(c) for c in args.concurrency.split(",")] if args.concurrency
            else [16] if smoke else [1, 16, 64])
    sizes = ([parse_size(x) for x in args.payload_sizes.split(",") if x] if args.payload_sizes
             is not None else [1024] if smoke else [1024, 64 * 1024, 1024 ** 2, 10 * 1024 ** 2])
    return Settings(
        servers=servers, runs=args.runs or (1 if smoke else 3),
        duration=args.duration or (1 if smoke else 5), concurrency=conc,
        fairness_conns=64, fairness_duration=2 if smoke else 6,
        payload_sizes=sizes, payload_conns=8, payload_duration=1 if smoke else 3,
        cold_runs=1 if smoke else 3, workers=args.workers, extra_workers=2,
        runaway_runs=1 if smoke else 3, runaway_timeout=2.0, warmup=1, smoke=smoke)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    s = settings_from(args)
    out_dir: Path = args.out or (REPO / "build" / "bench-smoke" if s.smoke
                                 else BENCH / "results")
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk not found (make bench installs it)")
    if shutil.which("ss") is None:
        log("ss not found (iproute2): stalled connections are not measured")
    if "pyrt" in s.servers and not args.pyrt_bin.exists():
        raise SystemExit(f"bench: {args.pyrt_bin} does not exist (run make)")
    if "ceiling" in s.servers:
        build_ceiling(args.ceiling_bin)
    become_subreaper()
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="pyrt-bench-"))
    code = work / "code"
    shutil.copytree(FUNCTIONS, code, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([PYTHON, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
                    str(code)], check=True)
    specs = make_specs(args.pyrt_bin.resolve(), args.ceiling_bin.resolve(), code)
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
                        f"-s bench/post.lua http://{HOST}:PORT/ (-t 1 at c=1)"),
        "results": bench.results, "problems": lab.problems,
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


if __name__ == "__main__":
    sys.exit(main())
