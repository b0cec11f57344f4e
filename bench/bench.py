#!/usr/bin/env python3
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
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import hashlib
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

ALL_SERVERS = ["ceiling", "pyrt", "uwsgi", "uvicorn", "aiohttp", "gunicorn", "flask",
               "pyrt-v5", "openruntimes-v5"]
ANCHORS = ["uwsgi", "uvicorn", "aiohttp", "gunicorn", "flask"]
V5_SERVERS = ["pyrt-v5", "openruntimes-v5"]

UPSTREAM_ANSWER = {"normal": "Hello World!", "env1": "Hello World!", "payload": "Hello World! 2"}
SEED_HEADERS = (("Content-Type", "application/json"), ("x-internal-challenge", KEY))

# The v5 workload: bench/functions/v5 answers this to the request below, which carries the
# headers the open-runtimes executor sends (executeV5) plus a user header. Logging is
# enabled with a fixed log id, so every execution appends to the same two files.
V5_SECRET = "bench-open-runtimes-secret"
V5_LOG_ID = "bench"
V5_PATH = "/hello?name=bench"
V5_TIMEOUT = 15
V5_BODY = b'{"payload": "Hello World! 2"}'
V5_ANSWER = {"normal": "Hello World!", "env1": "Hello World!", "payload": "Hello World! 2",
             "path": "/hello", "name": "bench", "test": "test1"}
OPENRUNTIMES_ENV = "BENCH_OPENRUNTIMES_SRC"
OPENRUNTIMES_SH = APPS / "openruntimes_v5.sh"
OPENRUNTIMES_FILES = ("server.py", "custom_worker.py", "function_types.py", "logger.py",
                      "config.py")
OPENRUNTIMES_HOWTO = (f"set {OPENRUNTIMES_ENV} to a folder holding open-runtimes' "
                      "runtimes/python/versions/latest/src (bench/README.md says how to "
                      "extract it from a clone)")


def v5_headers(logging: bool) -> tuple[tuple[str, str], ...]:
    """The executor's headers (open-runtimes/executor, Docker.php executeV5), the fixed log
    id, the body's type and one user header."""
    basic = base64.b64encode(f"opr:{V5_SECRET}".encode()).decode()
    out = [("content-type", "application/json"), ("test", "test1"),
           ("x-open-runtimes-secret", V5_SECRET), ("Authorization", f"Basic {basic}"),
           ("x-open-runtimes-timeout", str(V5_TIMEOUT)),
           ("x-open-runtimes-logging", "enabled" if logging else "disabled")]
    if logging:
        out.append(("x-open-runtimes-log-id", V5_LOG_ID))
    return tuple(out)


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

@dataclass(frozen=True)
class Req:
    """One request: the body, and the path and headers it goes with (the seed's by
    default). Host and Content-Length are added."""
    body: bytes
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = SEED_HEADERS


def http_request(port: int, req: Req, timeout: float,
                 on_connect: Optional[Callable[[int], None]] = None) -> tuple[int, bytes, float]:
    """One POST on a fresh connection: (status, body, seconds from connect to the end of
    the answer). Raises OSError (refused, reset, timed out) or ValueError (bad answer)."""
    start = time.monotonic()
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if on_connect is not None:
            on_connect(s.getsockname()[1])
        lines = [f"POST {req.path} HTTP/1.1", f"Host: {HOST}:{port}",
                 *(f"{name}: {value}" for name, value in req.headers),
                 f"Content-Length: {len(req.body)}"]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + req.body)
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
    argv: Callable[[int, int, Path], list[str]]  # (port, workers, instance dir) -> argv
    python: bool = True                       # runs the functions (False: the C ceiling)
    multi_worker: bool = True                 # takes a worker count
    packages: tuple[str, ...] = ()
    note: str = ""
    workload: str = "seed"                    # "seed" (post.lua's request) or "v5"

    @property
    def is_pyrt(self) -> bool:
        return self.name.startswith("pyrt")


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
    inst_dir: Path
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
                 if self.spec.python and k in SHOWN_ENV}
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


SHOWN_ENV = ("INTERNAL_RUNTIME_KEY", "BENCH_CODE_DIR", "OPEN_RUNTIMES_SECRET",
             "OPEN_RUNTIMES_ENTRYPOINT", "ENV1")


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


def make_specs(pyrt_bin: Path, ceiling_bin: Path, code: Path,
               openruntimes_src: Optional[Path]) -> dict[str, Spec]:
    apps = str(APPS)

    def pyrt(port: int, n: int, _d: Path) -> list[str]:
        return [str(pyrt_bin), "serve", "--code-dir", str(code), "--host", HOST,
                "--port", str(port), "--workers", str(n)]

    def pyrt_v5(port: int, n: int, inst: Path) -> list[str]:
        return [str(pyrt_bin), "serve", "--contract", "v5", "--code-dir", str(code / "v5"),
                "--host", HOST, "--port", str(port), "--workers", str(n),
                "--logs-dir", str(inst / "logs")]

    def openruntimes_v5(port: int, n: int, inst: Path) -> list[str]:
        return ["/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh",
                str(OPENRUNTIMES_SH), str(openruntimes_src), str(code / "v5"),
                str(inst / "logs"), str(inst / "ns"), str(port), str(n)]

    specs = {
        "ceiling": Spec("ceiling", "C ceiling (epoll, no Python)",
                        lambda port, n, _d: [str(ceiling_bin), HOST, str(port), str(n)],
                        python=False),
        "pyrt": Spec("pyrt", "pyrt", pyrt,
                     note="default logging (info: one access line per request, stderr to a file)"),
        "uwsgi": Spec("uwsgi", "uWSGI http11-socket",
                      lambda port, n, _d: ["/usr/bin/uwsgi", "--strict", "--plugin", "python3",
                                           "--http11-socket", f"{HOST}:{port}", "--master",
                                           "--processes", str(n), "--single-interpreter",
                                           "--need-app", "--die-on-term", "--disable-logging",
                                           "--wsgi-file", f"{apps}/wsgi_app.py"],
                      packages=("uwsgi-core", "uwsgi-plugin-python3")),
        "uvicorn": Spec("uvicorn", "uvicorn + uvloop + httptools",
                        lambda port, n, _d: [PYTHON, "-m", "uvicorn", "--host", HOST,
                                             "--port", str(port), "--workers", str(n),
                                             "--loop", "uvloop", "--http", "httptools",
                                             "--no-access-log", "--app-dir", apps, "asgi_app:app"],
                        packages=("python3-uvicorn", "python3-uvloop", "python3-httptools")),
        "aiohttp": Spec("aiohttp", "gunicorn + aiohttp worker (open-runtimes v5 stack)",
                        lambda port, n, _d: ["/usr/bin/gunicorn", "--workers", str(n),
                                             "--worker-class", "aiohttp.GunicornWebWorker",
                                             "--bind", f"{HOST}:{port}", "--chdir", apps,
                                             "aiohttp_app:app"],
                        packages=("gunicorn", "python3-aiohttp")),
        "gunicorn": Spec("gunicorn", "gunicorn sync",
                         lambda port, n, _d: ["/usr/bin/gunicorn", "--workers", str(n),
                                              "--worker-class", "sync", "--bind", f"{HOST}:{port}",
                                              "--chdir", apps, "wsgi_app:app"],
                         packages=("gunicorn",),
                         note="sync workers close the connection after each answer"),
        "flask": Spec("flask", "seed: Flask dev server, re-import per request",
                      lambda port, n, _d: [PYTHON, "-m", "flask", "--app", f"{apps}/seed_flask.py",
                                           "run", "--host", HOST, "--port", str(port)],
                      multi_worker=False, packages=("python3-flask", "python3-werkzeug"),
                      note="one process (threaded), as the seed ran it; no worker count"),
        "pyrt-v5": Spec("pyrt-v5", "pyrt, v5 contract", pyrt_v5, workload="v5",
                        note="`serve --contract v5`, default logging (an access line per "
                             "request, stderr to a file)"),
    }
    if openruntimes_src is not None:
        specs["openruntimes-v5"] = Spec(
            "openruntimes-v5", "open-runtimes' v5 server (gunicorn + aiohttp worker)",
            openruntimes_v5, workload="v5", packages=("gunicorn", "python3-aiohttp"),
            note=f"their server.py from {OPENRUNTIMES_ENV}, run as their hooks/server.sh "
                 "does (gunicorn --preload --timeout 0, their aiohttp worker class, "
                 "--log-level=warning) but on Debian's gunicorn and aiohttp, in a private "
                 "mount namespace: bench/apps/openruntimes_v5.sh")
    return specs


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
        self.count += 1
        inst_dir = self.work / f"{self.count:02d}-{name}{tag}.d"
        argv = spec.argv(port, workers, inst_dir) + list(extra)
        env = {"PATH": SERVER_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
        if spec.workload == "v5":
            # The v5 executor's variables; ENV1 is the function's own (answered back).
            env.update(OPEN_RUNTIMES_SECRET=V5_SECRET, OPEN_RUNTIMES_ENTRYPOINT="index.py",
                       ENV1=UPSTREAM_ANSWER["env1"])
            (inst_dir / "logs").mkdir(parents=True)
            (inst_dir / "ns").mkdir()
        else:
            env.update(INTERNAL_RUNTIME_KEY=KEY, BENCH_CODE_DIR=str(self.code))
        log_path = self.work / f"{self.count:02d}-{name}{tag}.log"
        with open(log_path, "wb") as out:
            started = time.monotonic()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env=env, cwd=str(self.work), start_new_session=True)
        OWN_CHILDREN.add(proc.pid)
        return Server(spec, port, workers, log_path, argv, env, proc, started, inst_dir)

    def stop(self, server: Server, grace: float = STOP_TIMEOUT, hung: bool = False) -> None:
        """Stops it; anything left behind is a problem of the run. pyrt not stopping on
        SIGTERM is one too (the contract says it does); for the others it is a note."""
        left, note = server.stop(grace, hung)
        self.problems.extend(left)
        if note and server.spec.is_pyrt:
            self.problems.append(f"{server.spec.name} {note}")
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
    if name.startswith("pyrt"):
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


def wait_answer(server: Server, req: Req, check: Callable[[int, bytes], bool],
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
            status, data, _ = http_request(server.port, req, timeout=2.0)
            if check(status, data):
                return time.monotonic() - server.started
            last = f"status {status}: {data[:200]!r}"
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(poll)
    raise RuntimeError(f"{server.spec.name} gave no good answer within {timeout:.0f} s "
                       f"(last: {last}):\n{server.log_tail()}")


# --------------------------------------------------------------------------- wrk

@dataclass(frozen=True)
class WrkReq:
    """What post.lua sends: the body file, and either the seed's key (BENCH_KEY) or a file
    of header lines (BENCH_HEADERS_FILE), on path."""
    body_file: Path
    headers_file: Optional[Path] = None
    path: str = "/"


def run_wrk(port: int, conns: int, duration: int, wreq: WrkReq,
            threads: Optional[int] = None) -> dict[str, Any]:
    threads = threads or max(1, min(conns, os.cpu_count() or 1))
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s",
           "--timeout", "10s", "-s", str(LUA), f"http://{HOST}:{port}{wreq.path}"]
    env = dict(os.environ, BENCH_BODY_FILE=str(wreq.body_file))
    env.pop("BENCH_KEY", None)
    env.pop("BENCH_HEADERS_FILE", None)
    if wreq.headers_file is None:
        env["BENCH_KEY"] = KEY
    else:
        env["BENCH_HEADERS_FILE"] = str(wreq.headers_file)
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

    def __init__(self, port: int, conns: int, duration: int, wreq: WrkReq) -> None:
        self.result: Optional[dict[str, Any]] = None
        self.error: Optional[BaseException] = None
        self.started = time.monotonic()
        self.end = self.started + duration

        def go() -> None:
            try:
                self.result = run_wrk(port, conns, duration, wreq)
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
    v5_logging: bool


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

@dataclass(frozen=True)
class Workload:
    """A server's request (for the checks and the fresh clients, and for wrk) and the
    function's answer to it."""
    req: Req
    wrk: WrkReq
    answer: dict[str, str]


class Bench:
    def __init__(self, settings: Settings, lab: Lab, pyrt_bin: Path) -> None:
        self.s = settings
        self.lab = lab
        self.pyrt_bin = pyrt_bin
        self.results: dict[str, dict[str, Any]] = {n: {"notes": []} for n in settings.servers}
        self.bodies: dict[str, Path] = {}
        code = lab.code
        self.upstream = Req(json.dumps({
            "path": str(code / "upstream"), "file": "index.py",
            "env": {"ENV1": "Hello World!"}, "payload": "Hello World! 2",
            "timeout": 60, "headers": {"test": "test1"}}).encode())
        v5 = Req(V5_BODY, V5_PATH, v5_headers(settings.v5_logging))
        v5_headers_file = lab.work / "headers-v5.txt"
        v5_headers_file.write_text("".join(f"{k}: {v}\n" for k, v in v5.headers))
        self.workloads = {
            "seed": Workload(self.upstream,
                             WrkReq(self.body_file("upstream", self.upstream.body)),
                             UPSTREAM_ANSWER),
            "v5": Workload(v5, WrkReq(self.body_file("v5", v5.body), v5_headers_file, V5_PATH),
                           V5_ANSWER),
        }

    def wl(self, name: str) -> Workload:
        return self.workloads[self.lab.specs[name].workload]

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

    def good_answer(self, name: str) -> Callable[[int, bytes], bool]:
        """The ceiling answers anything; the others must give their function's answer."""
        if not self.lab.specs[name].python:
            return lambda status, data: status == 200
        answer = self.wl(name).answer

        def check(status: int, data: bytes) -> bool:
            if status != 200:
                return False
            try:
                return bool(json.loads(data) == answer)
            except ValueError:
                return False
        return check

    def seed_python_servers(self) -> list[str]:
        """The servers the seed-only phases (payload scaling, runaway code) apply to."""
        return [n for n in self.s.servers
                if self.lab.specs[n].python and self.lab.specs[n].workload == "seed"]

    # ---- cold start and memory per worker
    def cold_start(self) -> None:
        times: dict[str, list[float]] = {n: [] for n in self.s.servers}
        for r in range(self.s.cold_runs):
            for name in self.s.servers:
                if "failed" in self.results[name]:
                    continue
                srv = self.lab.start(name, self.s.workers, tag=f"-cold{r}")
                try:
                    secs = wait_answer(srv, self.wl(name).req, self.good_answer(name))
                    times[name].append(secs * 1000)
                    if r == self.s.cold_runs - 1:
                        run_wrk(srv.port, 8, self.s.warmup, self.wl(name).wrk)
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
                wait_answer(srv, self.wl(name).req, self.good_answer(name))
                run_wrk(srv.port, 2 * n4, self.s.warmup, self.wl(name).wrk)
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
                wait_answer(srv, self.wl(name).req, self.good_answer(name))
                srv.mark("warm-up")
                run_wrk(srv.port, 16, self.s.warmup, self.wl(name).wrk)
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
                        res = run_wrk(srv.port, c, self.s.duration, self.wl(name).wrk)
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
        wrk = WrkBackground(srv.port, conns, duration, self.wl(name).wrk)
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
                status, _, secs = http_request(srv.port, self.wl(name).req, timeout=5.0,
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
                status, data, _ = http_request(srv.port, Req(self.bodies[key].read_bytes()),
                                               60.0)
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
                              WrkReq(self.bodies[key]))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                self.note(name, f"echo {size_label(size)} wrk: {exc}")
                continue
            out[str(size)] = {"check": check, "rps": res["rps"],
                              "p99_ms": res["latency_us"]["p99"] / 1000,
                              "errors": res["error_count"]}
            log(f"payload {name} {size_label(size)}: {res['rps']:.0f} req/s, "
                f"p99 {res['latency_us']['p99'] / 1000:.1f} ms, {res['error_count']} errors")
        self.results[name]["payload"] = out

    def v5_logs(self, name: str, srv: Server) -> None:
        """What the main instance left in its logs folder (nobody deletes the files, as the
        executor would): with logging enabled and a fixed log id, two files that stay
        small; more files, or growth, is worth a look."""
        files = [f for f in (srv.inst_dir / "logs").iterdir() if f.is_file()]
        usage = {"files": len(files), "bytes": sum(f.stat().st_size for f in files),
                 "names": sorted(f.name for f in files)[:6],
                 "logging": "enabled" if self.s.v5_logging else "disabled"}
        self.results[name]["v5_logs"] = usage
        log(f"v5 logs {name}: {usage['files']} files, {usage['bytes']} bytes")
        if len(files) > (2 if self.s.v5_logging else 0):
            self.note(name, f"logs folder after the run: {usage['files']} files "
                            f"({usage['bytes']} bytes), expected "
                            f"{2 if self.s.v5_logging else 0}")

    # ---- runaway code
    def runaway(self, name: str) -> None:
        is_pyrt = name == "pyrt"
        extra = ("--log-level", "debug") if is_pyrt else ()
        srv = self.lab.start(name, self.s.workers, extra=extra, tag="-runaway")
        deadline = self.s.runaway_timeout
        wait = deadline + (3.0 if not is_pyrt else 2.0)
        spin = Req(json.dumps({"path": str(self.lab.code / "spin"), "file": "index.py",
                               "timeout": deadline}).encode())
        runs: list[dict[str, Any]] = []
        try:
            wait_answer(srv, self.wl(name).req, self.good_answer(name))
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

    def _runaway_once(self, srv: Server, spin: Req, wait: float) -> dict[str, Any]:
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
                if name in self.seed_python_servers() and self.s.payload_sizes:
                    self.payload(name, srv)
        finally:
            for name, srv in servers.items():
                srv.mark("shutdown")
                self.lab.stop(srv)
                self.log_notes(name, srv, "")
                if srv.spec.workload == "v5":
                    self.v5_logs(name, srv)
        log("phase 6: runaway code")
        try:
            for name in self.seed_python_servers():
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


def v5_info(s: Settings, src: Optional[Path]) -> dict[str, Any]:
    """What the v5 rows ran: the function, the request, the logging, open-runtimes' source
    (a digest of its files, since the folder carries no commit) or why it was skipped."""
    headers = v5_headers(s.v5_logging)
    info: dict[str, Any] = {
        "function": "bench/functions/v5/index.py: async def main(context), answers "
                    "context.res.json({...}) built from the body, path, query, a header "
                    "and ENV1",
        "request": f"POST {V5_PATH}, body {V5_BODY.decode()}, headers "
                   + "; ".join(f"{k}: {v}" for k, v in headers),
        "logging": (f"enabled, fixed log id {V5_LOG_ID!r}: each execution appends to "
                    f"{V5_LOG_ID}_logs.log and {V5_LOG_ID}_errors.log in the instance's "
                    "logs folder (nobody deletes them)" if s.v5_logging else
                    "disabled (x-open-runtimes-logging: disabled): no log files"),
        "openruntimes_src": None, "skipped": None,
    }
    if src is not None:
        digest = hashlib.sha256()
        for name in OPENRUNTIMES_FILES:
            digest.update((src / name).read_bytes())
        info["openruntimes_src"] = {"path": str(src), "sha256": digest.hexdigest()[:16],
                                    "files": list(OPENRUNTIMES_FILES)}
    elif any(n in V5_SERVERS for n in s.servers):
        info["skipped"] = f"openruntimes-v5 skipped: {OPENRUNTIMES_HOWTO}"
    return info


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


V5_RATIOS = (("pyrt-v5", "openruntimes-v5"), ("pyrt-v5", "pyrt"))


def v5_ratios(results: dict[str, dict[str, Any]], concs: list[str]) -> dict[str, Any]:
    """pyrt-v5 over open-runtimes' server, and over pyrt's seed contract: req/s, p99 and
    CPU per request at each concurrency, cold start and PSS after load."""
    out: dict[str, Any] = {}
    for a, b in V5_RATIOS:
        if a not in results or b not in results:
            continue
        ra, rb = results[a], results[b]
        rr: dict[str, Any] = {}
        for c in concs:
            for key, path in (("rps", ("rps", "median")), ("p99", ("p99_ms",)),
                              ("cpu", ("cpu_us_per_req",))):
                rr[f"{key}_c{c}"] = ratio(get(ra, "throughput", c, *path),
                                          get(rb, "throughput", c, *path))
        rr["cold_start"] = ratio(get(ra, "cold_start_ms", "median"),
                                 get(rb, "cold_start_ms", "median"))
        rr["pss_after_load"] = ratio(get(ra, "pss_after_load_kib"),
                                     get(rb, "pss_after_load_kib"))
        out[f"{a}/{b}"] = rr
    return out


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
    out["v5"] = v5_ratios(results, concs)
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
        lg = r.get("v5_logs")
        if lg:
            rows += [[name, "v5_logs_files_after", lg["logging"], str(lg["files"]), "count"],
                     [name, "v5_logs_bytes_after", lg["logging"], str(lg["bytes"]), "bytes"]]
    for key, rr in (get(doc, "analysis", "v5") or {}).items():
        for fig, value in rr.items():
            rows.append([key, f"ratio_{fig.split('_c')[0]}",
                         fig.split("_c")[1] if "_c" in fig else "", fmt(value, ".3f"), "x"])
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
             f"ratios. Took {doc['elapsed_s']:.0f} s."
             + (" The v5 rows run the v5 workload instead (open-runtimes' contract: "
                "section *open-runtimes v5 contract*); `pyrt/x` is for the seed rows."
                if any(n in V5_SERVERS for n in names) else ""))
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
            row.append(fmt(get(an, "ratios", n, f"rps_c{c}"), ".2f", "x")
                       if n != "pyrt" and n not in V5_SERVERS else "")
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
    L += markdown_v5(doc, names, concs)
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


def markdown_v5(doc: dict[str, Any], names: list[str], concs: list[str]) -> list[str]:
    """The v5 section: pyrt-v5 beside open-runtimes' own server and pyrt's seed figure."""
    res: dict[str, dict[str, Any]] = doc["results"]
    v5 = doc.get("v5") or {}
    rows = [n for n in ("pyrt", *V5_SERVERS) if n in names]
    if not any(n in V5_SERVERS for n in rows):
        return []
    L = ["", "## open-runtimes v5 contract", ""]
    L.append(f"The same function on each v5 server — {v5.get('function')}. The request, "
             f"over keep-alive, is what the open-runtimes executor sends (executeV5) plus a "
             f"user header: {v5.get('request')}. Logging: {v5.get('logging')}. pyrt's "
             "seed-contract row (the upstream request, `main(req, res)`) is the reference. "
             "CPU per request is the server's processes only.")
    src = v5.get("openruntimes_src")
    if src:
        L.append("")
        L.append(f"open-runtimes' server: its own `server.py`, `function_types.py`, "
                 f"`logger.py`, `config.py`, `custom_worker.py` from `{src['path']}` "
                 f"(sha256 of the five, concatenated: {src['sha256']}), run as its "
                 "`hooks/server.sh` does but on Debian's gunicorn and aiohttp (their image "
                 "pins gunicorn 23.0.0 and aiohttp 3.10.9; versions below).")
    L.append("")
    head = ["server"] + [f"req/s c={c}" for c in concs] + \
        [f"p50 / p99 c={c} (ms)" for c in concs] + [f"CPU/req c={c} (µs)" for c in concs] + \
        ["cold start (ms)", "PSS after load (MiB)", "logs folder after"]
    L += table_head(head)
    for n in rows:
        r = res[n]
        row = [r.get("label", n) + (" (seed contract)" if n == "pyrt" else "")]
        for c in concs:
            t = get(r, "throughput", c)
            row.append(f"{t['rps']['median']:.0f} ({t['rps']['min']:.0f}–{t['rps']['max']:.0f})"
                       if t else "–")
        for c in concs:
            t = get(r, "throughput", c)
            row.append(f"{t['p50_ms']:.2f} / {t['p99_ms']:.2f}" if t else "–")
        for c in concs:
            row.append(fmt(get(r, "throughput", c, "cpu_us_per_req"), ".0f"))
        cold = r.get("cold_start_ms")
        row.append(f"{cold['median']:.0f}" if cold else "–")
        row.append(fmt(r.get("pss_after_load_kib") and r["pss_after_load_kib"] / 1024, ".1f"))
        lg = r.get("v5_logs")
        row.append(f"{lg['files']} files, {lg['bytes']} bytes" if lg else "")
        L.append(table_row(row))
    if v5.get("skipped"):
        L.append("")
        L.append(f"Not measured: {v5['skipped']}.")
    ratios = get(doc, "analysis", "v5") or {}
    if ratios:
        L.append("")
        L += table_head(["ratio"] + [f"req/s c={c}" for c in concs] +
                        [f"p99 c={c}" for c in concs] + [f"CPU/req c={c}" for c in concs] +
                        ["cold start", "PSS after load"])
        for key, rr in ratios.items():
            a, b = key.split("/")
            label = f"{a} / {b}" + (" (seed)" if b == "pyrt" else "")
            L.append(table_row(
                [label] + [fmt(rr.get(f"rps_c{c}"), ".2f", "x") for c in concs] +
                [fmt(rr.get(f"p99_c{c}"), ".2f", "x") for c in concs] +
                [fmt(rr.get(f"cpu_c{c}"), ".2f", "x") for c in concs] +
                [fmt(rr.get("cold_start"), ".2f", "x"), fmt(rr.get("pss_after_load"), ".2f", "x")]))
    return L


def table_head(cols: list[str]) -> list[str]:
    return [table_row(cols), "|" + "|".join("---" for _ in cols) + "|"]


def table_row(cols: list[str]) -> str:
    return "| " + " | ".join(cols) + " |"


# --------------------------------------------------------------------------- main

def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true",
                    help="pyrt (seed and v5 contracts) and the ceiling only, one short run "
                         "of each figure")
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
    sizes = ([parse_size(x) for x in args.payload_sizes.split(",") if x] if args.payload_sizes
             is not None else [1024] if smoke else [1024, 64 * 1024, 1024 ** 2, 10 * 1024 ** 2])
    return Settings(
        servers=servers, runs=args.runs or (1 if smoke else 3),
        duration=args.duration or (1 if smoke else 5), concurrency=conc,
        fairness_conns=64, fairness_duration=2 if smoke else 6,
        payload_sizes=sizes, payload_conns=8, payload_duration=1 if smoke else 3,
        cold_runs=1 if smoke else 3, workers=args.workers, extra_workers=2,
        runaway_runs=1 if smoke else 3, runaway_timeout=2.0, warmup=1, smoke=smoke,
        v5_logging=args.v5_logging == "enabled")


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


if __name__ == "__main__":
    sys.exit(main())
