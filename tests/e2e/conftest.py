"""End-to-end fixtures for pyrt: start the real `build/pyrt serve`, talk HTTP to it.

Every server listens on 127.0.0.1 on a free port, logs to a file, and is stopped by its
PID. On teardown the fixture fails the test when the server logged an `[alert]` (or a
sanitizer report), did not exit 0 after SIGTERM, or left any process behind.

The pytest process makes itself a child subreaper, so a process that escaped the
server's tree (double fork, setsid) is re-parented here and can be found and reaped.

Run with Debian's interpreter: `/usr/bin/python3 -m pytest tests/e2e`.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import pytest

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parent.parent
FUNCTIONS = E2E_DIR / "functions"
PYRT = Path(os.environ.get("PYRT_BIN", str(REPO / "build" / "pyrt")))

KEY = "secret"
WRONG_KEY = "notthesecretexpected"
HOST = "127.0.0.1"

HEALTH_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
STRAY_GRACE = 3.0
TEST_TIMEOUT = 120

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
LOG_RE = re.compile(
    r"^(?P<time>\S+) \[(?P<level>debug|info|warn|error|alert)\] "
    r"(?P<role>.+?) (?P<pid>\d+): (?P<msg>.*)$"
)
ACCESS_RE = re.compile(
    r"^access req=(?P<id>\S+) method=(?P<method>\S+) path=(?P<path>\S+) "
    r"status=(?P<status>\d+) ms=(?P<ms>[0-9.]+) worker=(?P<worker>\S+) "
    r"outcome=(?P<outcome>[a-z_]+)\s*$"
)
BAD_LOG_MARKERS = ("[alert]", '"level":"alert"', "AddressSanitizer", "LeakSanitizer",
                   "runtime error:")

PR_SET_CHILD_SUBREAPER = 36


def pytest_configure(config: pytest.Config) -> None:
    """Started as root, pyrt runs each worker as a uid of its own, which must be able to
    enter the folders above a code folder under tmp_path -- and pytest keeps
    /tmp/pytest-of-USER at 0700 (resetting it whenever a session starts). So tmp_path
    lives in a folder of this session's, searchable but not listable by others; a test
    still makes its own tmp_path readable when pyrt serves from it."""
    if config.option.basetemp is None and os.geteuid() == 0:
        base = tempfile.mkdtemp(prefix="pyrt-pytest-")
        config.option.basetemp = base
        config.stash[_OWN_BASETEMP] = base


def pytest_unconfigure(config: pytest.Config) -> None:
    base = config.stash.get(_OWN_BASETEMP, None)
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


_OWN_BASETEMP = pytest.StashKey[str]()


def _become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        pass


_become_subreaper()

# PIDs of processes this suite started itself (servers): never reaped by the stray check.
_OWN_CHILDREN: set[int] = set()

# Servers running, with an fd baseline: checked after every test (_fds_stay_flat).
_LIVE_SERVERS: list["Server"] = []


# --------------------------------------------------------------------------- HTTP helpers

Body = Union[bytes, str, dict, list, None]


def encode_body(body: Body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def post(
    port: int,
    body: Body,
    key: Optional[str] = KEY,
    headers: Optional[dict[str, str]] = None,
    path: str = "/",
    method: str = "POST",
    timeout: float = 30.0,
    timing: Optional[dict[str, float]] = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; returns (status, lower-cased headers, body).

    If timing is given, timing["connect"] is set to the TCP connect time."""
    data = encode_body(body)
    hdrs: dict[str, str] = {}
    if key is not None:
        hdrs["x-internal-challenge"] = key
    if headers:
        hdrs.update(headers)
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if timing is not None:
            start = time.monotonic()
            conn.connect()
            timing["connect"] = time.monotonic() - start
        if method == "POST" or data:
            conn.request(method, path, body=data, headers=hdrs)
        else:
            conn.request(method, path, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
    finally:
        conn.close()


def post_json(port: int, body: Body, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    """Like post(), with the response body parsed as JSON (None if it is not JSON)."""
    status, headers, data = post(port, body, **kwargs)
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    return status, headers, parsed


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    return post(port, None, key=None, path=path, method="GET", timeout=timeout)


@dataclass
class RawResponse:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        for k, v in reversed(self.headers):
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)


class RawConn:
    """A raw TCP connection to the server for framing tests."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawConn":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> bool:
        """Send all of data; False if the server already closed/reset the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_until_close(self, timeout: float = 5.0) -> tuple[bytes, bool]:
        """Everything until EOF; (data, closed). closed is False if timeout hit first."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                self._fill()
            except socket.timeout:
                break
        data, self.buf = self.buf, b""
        return data, self.eof

    def is_closed(self, timeout: float = 3.0) -> bool:
        """True if the server closes the connection within timeout (no more data)."""
        _, closed = self.read_until_close(timeout)
        return closed

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"EOF after {len(self.buf)} of {n} bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("EOF while reading a line")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_response(self, skip_interim: bool = True, head_only: bool = False) -> RawResponse:
        """Read one response (Content-Length, chunked or close-delimited body)."""
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._fill():
                    raise ConnectionError(f"EOF before a full response head: {self.buf!r}")
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            version, status = parts[0], int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            headers = []
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
            resp = RawResponse(status, reason, version, headers, b"")
            if 100 <= status < 200:
                if skip_interim:
                    continue
                return resp
            break
        if head_only or status in (204, 304):
            return resp
        te = (resp.header("transfer-encoding") or "").lower()
        cl = resp.header("content-length")
        if "chunked" in te:
            body = b""
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    while self._read_line():
                        pass
                    break
                body += self._read_exact(size)
                self._read_line()
            resp.body = body
        elif cl is not None:
            resp.body = self._read_exact(int(cl))
        else:
            data, _ = self.read_until_close()
            resp.body = data
        return resp


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Send bytes on a new connection, read until close or timeout: (received, closed)."""
    with RawConn(port, timeout) as conn:
        conn.send(data)
        return conn.read_until_close(timeout)


def http_request(
    body: Body,
    key: Optional[str] = KEY,
    path: str = "/",
    method: str = "POST",
    version: str = "HTTP/1.1",
    extra: Sequence[str] = (),
) -> bytes:
    """Bytes of one well-formed request with Content-Length."""
    data = encode_body(body)
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    if key is not None:
        lines.append(f"x-internal-challenge: {key}")
    lines.append(f"Content-Length: {len(data)}")
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def parse_responses(data: bytes) -> list[RawResponse]:
    """All complete responses in data (as read from a socket)."""
    conn = RawConn.__new__(RawConn)
    conn.buf = data
    conn.eof = True
    conn.sock = None  # type: ignore[assignment]
    out = []
    while conn.buf:
        try:
            out.append(conn.read_response())
        except (ConnectionError, ValueError, IndexError):
            break
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- processes

def proc_stat(pid: int) -> Optional[tuple[str, int, int]]:
    """(state, ppid, starttime) of pid, or None if it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except OSError:
        return "?"


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> list[tuple[int, int]]:
    """(pid, starttime) of every live descendant of root."""
    children: dict[int, list[tuple[int, int]]] = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None:
            children.setdefault(st[1], []).append((pid, st[2]))
    out: list[tuple[int, int]] = []
    todo = [root]
    while todo:
        for kid in children.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid[0])
    return out


def cpu_ticks(pid: int) -> int:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    rest = data[data.rfind(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def busy_descendants(root: int, window: float = 0.3) -> list[int]:
    """Descendants of root that used CPU during window (e.g. a worker in a busy loop)."""
    before = {pid: cpu_ticks(pid) for pid, _ in descendants(root)}
    time.sleep(window)
    return [pid for pid, t in before.items() if t >= 0 and cpu_ticks(pid) - t >= 5]


def alive(pid: int, starttime: Optional[int] = None) -> bool:
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return starttime is None or st[2] == starttime


def reap_orphans() -> list[tuple[int, str]]:
    """Processes re-parented to this (subreaper) process: reap zombies, return live ones."""
    me = os.getpid()
    live = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st is None or st[1] != me or pid in _OWN_CHILDREN:
            continue
        if st[0] == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        else:
            live.append((pid, proc_cmdline(pid)))
    return live


def wait_until(cond: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


# --------------------------------------------------------------------------- fds

FD_SETTLE = 3.0  # seconds a server may take to close what a test's clients closed


def _unix_socket_inodes() -> set[str]:
    """Inodes of the unix sockets in this network namespace (/proc/net/unix)."""
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {f.split()[6] for f in lines if len(f.split()) > 6}


def _tcp_socket_inodes() -> set[str]:
    """Inodes of the TCP sockets in this network namespace (/proc/net/tcp, tcp6)."""
    out: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        out.update(f.split()[9] for f in lines if len(f.split()) > 9)
    return out


def master_fds(pid: int) -> Optional[dict[int, str]]:
    """The master's open fds (fd -> what it points at), without its worker plumbing:
    pipes, unix sockets and memfds come and go with workers, whose number tests change
    on purpose (kills, recycling, restarts). What is left -- client connections, files,
    the loop's own fds -- must not grow. None if pid is gone."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    unix = _unix_socket_inodes()
    out: dict[int, str] = {}
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith(("pipe:", "/memfd:", "anon_inode:[pidfd]")):
            continue
        if target.startswith("socket:[") and target[8:-1] in unix:
            continue
        out[int(fd)] = target
    return out


def master_tcp_fds(pid: int) -> int:
    """How many TCP sockets the master holds (the listener and client connections)."""
    tcp = _tcp_socket_inodes()
    fds = master_fds(pid) or {}
    return sum(1 for t in fds.values() if t.startswith("socket:[") and t[8:-1] in tcp)


@contextlib.contextmanager
def reachable_pyrt_copy() -> Iterator[Path]:
    """build/pyrt copied where any user may run it: a 0755 folder of its own under /tmp,
    the copy 0755 whatever the umask. The checkout may sit where another user cannot go
    (a `mktemp -d` or /root, both 0700), or have been built under umask 077."""
    folder = Path(tempfile.mkdtemp(prefix="pyrt-bin-"))
    try:
        os.chmod(folder, 0o755)
        copy = folder / "pyrt"
        shutil.copyfile(PYRT, copy)
        os.chmod(copy, 0o755)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- code dirs

def chmod_tree(root: Path) -> None:
    """0755 dirs, 0644 files (0755 if already executable): readable by --user nobody."""
    os.chmod(root, 0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = Path(dirpath, d)
            if not p.is_symlink():
                os.chmod(p, 0o755)
        for f in filenames:
            p = Path(dirpath, f)
            if not p.is_symlink():
                mode = p.stat().st_mode
                os.chmod(p, 0o755 if mode & stat.S_IXUSR else 0o644)


def write_file(path: Path, text: str) -> None:
    """Write a file readable by anyone (for --user nobody servers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, 0o644)


ROOT_INDEX = "def main(req, res):\n    return res.send('root-index')\n"


def make_code_dir(files: Optional[dict[str, str]] = None, with_functions: bool = True) -> Path:
    """A fresh base dir under /tmp (world-readable) holding `code/` (the served dir).

    code/ gets a copy of tests/e2e/functions/* (one folder per function) and a root
    index.py; `files` (relative path -> text) are written into code/ on top. Beside
    code/ there are outside.py and outside_dir/index.py, for escape tests.
    """
    base = Path(tempfile.mkdtemp(prefix="pyrt-e2e-"))
    code = base / "code"
    code.mkdir()
    if with_functions:
        for fn in sorted(FUNCTIONS.iterdir()):
            if fn.is_dir() and not fn.name.startswith(("_", ".")):
                shutil.copytree(fn, code / fn.name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (code / "index.py").write_text(ROOT_INDEX)
    for rel, text in (files or {}).items():
        write_file(code / rel, text)
    escaped = "def main(req, res):\n    return res.send('escaped')\n"
    (base / "outside.py").write_text(escaped)
    (base / "outside_dir").mkdir()
    (base / "outside_dir" / "index.py").write_text(escaped)
    chmod_tree(base)
    return code


# --------------------------------------------------------------------------- the server

@dataclass
class LogLine:
    time: str
    level: str
    role: str
    pid: int
    msg: str
    raw: str


def parse_log_line(line: str) -> Optional[LogLine]:
    m = LOG_RE.match(line)
    if not m:
        return None
    return LogLine(m["time"], m["level"], m["role"], int(m["pid"]), m["msg"], line)


def clean_env(key: Optional[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYRT_") and k not in ("PORT", "ENTRYPOINT_NAME",
                                                      "INTERNAL_RUNTIME_KEY")}
    if key is not None:
        env["INTERNAL_RUNTIME_KEY"] = key
    # The suite reads text lines (LOG_RE); pyrt's default off a terminal is JSON. A test
    # that wants JSON passes --log-format json (flags win).
    env["PYRT_LOG_FORMAT"] = "text"
    return env


@dataclass
class Server:
    code_dir: Path
    log_path: Path
    args: list[str]
    key: str = KEY
    prefix: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: Optional[subprocess.Popen] = None
    stopped: bool = False
    signalled: bool = False
    returncode: Optional[int] = None
    problems: list[str] = field(default_factory=list)
    tracked: set[tuple[int, int]] = field(default_factory=set)
    # "launch" for `pyrt launch --archive ...` (extra options in args); default "serve".
    subcommand: str = "serve"
    # False: start() returns once /__health answers at all (503 included).
    wait_healthy: bool = True
    # The master's fds once ready (master_fds), for the check that they stay flat.
    fd_baseline: Optional[dict[int, str]] = None

    # --- life cycle
    def start(self) -> "Server":
        if not PYRT.exists():
            pytest.fail(f"{PYRT} does not exist: build it first (make)")
        self.port = free_port()
        cmd = self.prefix + [str(PYRT), self.subcommand, "--code-dir", str(self.code_dir),
                             "--host", HOST, "--port", str(self.port)] + self.args
        env = clean_env(self.key)
        env.update(self.env)
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=env, cwd="/")
        _OWN_CHILDREN.add(self.proc.pid)
        self.cmd = cmd
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                self.stopped = True
                pytest.fail(f"pyrt exited with {self.proc.returncode} during start-up:\n"
                            f"{' '.join(cmd)}\n{self.log_tail()}")
            try:
                status, _, _ = get(self.port, "/__health", timeout=1.0)
                if status == 200 or (not self.wait_healthy and status == 503):
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"/__health not 200 within {HEALTH_TIMEOUT} s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.track()
        self.record_fds()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def record_fds(self) -> None:
        """The fd baseline, once the readiness checks' own connections are closed (only
        the listener left); registers the server for the per-test check."""
        wait_until(lambda: master_tcp_fds(self.pid) <= 1, FD_SETTLE)
        self.fd_baseline = master_fds(self.pid)
        if not any(x is self for x in _LIVE_SERVERS):
            _LIVE_SERVERS.append(self)

    def fd_growth(self) -> list[str]:
        """Fds the master holds beyond its baseline, after a bounded wait for it to close
        what the test's clients closed; [] when flat (or the server is not running as
        usual: stopped, signalled, gone)."""
        if self.fd_baseline is None or self.stopped or self.signalled or self.proc is None \
                or self.proc.poll() is not None:
            return []
        st = proc_stat(self.pid)
        if st is None or st[0] in ("T", "t", "Z", "X"):
            return []
        base = len(self.fd_baseline)

        def flat() -> bool:
            now = master_fds(self.pid)
            return now is None or len(now) <= base
        if wait_until(flat, FD_SETTLE):
            return []
        now = master_fds(self.pid) or {}
        if len(now) <= base:
            return []
        extra = sorted(f"{fd} -> {t}" for fd, t in now.items()
                       if self.fd_baseline.get(fd) != t)
        return [f"the master holds {len(now)} fds (beyond its workers' pipes and sockets), "
                f"{base} when it was ready, {FD_SETTLE} s after the test: " + ", ".join(extra)]

    def track(self) -> list[tuple[int, int]]:
        """Remember the server's current descendants (checked for leftovers at stop)."""
        kids = descendants(self.pid) if self.proc and self.proc.poll() is None else []
        self.tracked.update(kids)
        return kids

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.track()
            self.signalled = True
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> Optional[int]:
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.stopped = True
        return self.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.track()
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.stopped = True

    def stop(self, sig: int = signal.SIGTERM) -> Optional[int]:
        """Signal, wait (bounded) then SIGKILL. Records problems; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            if not self.stopped and not self.signalled:
                self.problems.append(
                    f"pyrt exited on its own with {self.proc.returncode} before being stopped")
            self.stopped = True
            self.returncode = self.proc.returncode
            return self.returncode
        self.send_signal(sig)
        rc = self.wait(STOP_TIMEOUT)
        if rc is None:
            self.problems.append(f"pyrt did not exit within {STOP_TIMEOUT} s of "
                                 f"{signal.Signals(sig).name}; killed")
            self.kill()
        elif rc != 0:
            self.problems.append(f"pyrt exited with {rc} after {signal.Signals(sig).name}")
        return rc

    def finish(self) -> list[str]:
        """Stop if needed, then check log and leftovers; returns the problems found."""
        self.problems.extend(self.fd_growth())
        _LIVE_SERVERS[:] = [x for x in _LIVE_SERVERS if x is not self]
        if not self.stopped:
            self.stop()
        elif self.proc is not None and self.proc.poll() is None:
            self.kill()
        if not self.problems and self.returncode is not None and self.returncode < 0:
            self.problems.append(f"pyrt was killed by signal {-self.returncode}")

        def live() -> list[tuple[int, int]]:
            return [(p, s) for p, s in self.tracked if alive(p, s)]
        wait_until(lambda: not live(), STRAY_GRACE)
        stray = live()
        stray_info = [f"{p} ({proc_cmdline(p)})" for p, _ in (stray or [])]
        for p, _ in stray or []:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        orphans = reap_orphans()
        for p, cmd in orphans or []:
            stray_info.append(f"{p} ({cmd}) re-parented to the test runner")
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if stray_info:
            self.problems.append("processes left behind: " + ", ".join(stray_info))
        if hasattr(self, "log_file"):
            self.log_file.close()
        for line in self.log_text().splitlines():
            if any(m in line for m in BAD_LOG_MARKERS):
                self.problems.append(f"bad log line: {line}")
        return self.problems

    # --- log
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_lines(self) -> list[LogLine]:
        return [ln for ln in map(parse_log_line, self.log_text().splitlines()) if ln]

    def wait_log(self, pred: Callable[[LogLine], bool], timeout: float = 3.0,
                 count: int = 1) -> list[LogLine]:
        """Log lines matching pred, waiting up to timeout for at least count of them."""
        found = wait_until(
            lambda: (lambda m: m if len(m) >= count else None)(
                [ln for ln in self.log_lines() if pred(ln)]),
            timeout)
        return found or [ln for ln in self.log_lines() if pred(ln)]

    def access_lines(self, req_id: str, timeout: float = 3.0) -> list[re.Match]:
        lines = self.wait_log(lambda ln: ln.msg.startswith(f"access req={req_id} "), timeout)
        return [m for m in (ACCESS_RE.match(ln.msg) for ln in lines) if m]

    # --- requests
    def post(self, body: Body, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        return post(self.port, body, **kwargs)

    def post_json(self, body: Body, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
        return post_json(self.port, body, **kwargs)

    def fn(self, name: str) -> Path:
        """Folder of a function in the served dir."""
        return self.code_dir / name

    def call(self, name: str, payload: Any = None, timeout: Optional[float] = None,
             file: str = "index.py", **kwargs: Any) -> tuple[int, dict[str, str], Any]:
        """POST the standard body for function `name`; the response body parsed as JSON."""
        body: dict[str, Any] = {"path": str(self.fn(name)), "file": file}
        if payload is not None:
            body["payload"] = payload
        if timeout is not None:
            body["timeout"] = timeout
        return self.post_json(body, **kwargs)

    def call_raw(self, name: str, payload: Any = None, timeout: Optional[float] = None,
                 file: str = "index.py", **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        body: dict[str, Any] = {"path": str(self.fn(name)), "file": file}
        if payload is not None:
            body["payload"] = payload
        if timeout is not None:
            body["timeout"] = timeout
        return self.post(body, **kwargs)


class ServerFactory:
    """Starts servers; finish() stops them all and fails if any misbehaved."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.servers: list[Server] = []
        self.bases: list[Path] = []

    def __call__(self, args: Sequence[str] = (), code_dir: Optional[Path] = None,
                 files: Optional[dict[str, str]] = None, key: str = KEY,
                 prefix: Sequence[str] = (), env: Optional[dict[str, str]] = None,
                 subcommand: str = "serve", wait_healthy: bool = True) -> Server:
        if code_dir is None:
            code_dir = make_code_dir(files)
            self.bases.append(code_dir.parent)
        log_path = self.tmp / f"pyrt-{len(self.servers)}.log"
        server = Server(code_dir=code_dir, log_path=log_path, args=list(args), key=key,
                        prefix=list(prefix), env=dict(env or {}), subcommand=subcommand,
                        wait_healthy=wait_healthy)
        self.servers.append(server)
        return server.start()

    def finish(self) -> None:
        finish_servers(self.servers, self.bases)


def finish_servers(servers: Sequence[Server], bases: Sequence[Path]) -> None:
    """Stops every server, removes the folders, and fails if any server misbehaved."""
    problems = []
    for s in servers:
        for p in s.finish():
            problems.append(f"[{s.log_path}] {p}")
        if s.problems:
            problems.append(f"log tail of {s.log_path}:\n{s.log_tail(20)}")
    for base in bases:
        shutil.rmtree(base, ignore_errors=True)
    if problems:
        pytest.fail("server check failed:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Fresh servers for one test."""
    factory = ServerFactory(tmp_path)
    yield factory
    factory.finish()


@pytest.fixture(scope="module")
def module_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Servers shared by the tests of one module."""
    factory = ServerFactory(tmp_path_factory.mktemp("pyrt"))
    yield factory
    factory.finish()


@pytest.fixture(scope="session", autouse=True)
def _basetemp_searchable(tmp_path_factory: pytest.TempPathFactory,
                         pytestconfig: pytest.Config) -> None:
    """pytest makes the basetemp 0700 when it first uses it (pytest_configure)."""
    if pytestconfig.stash.get(_OWN_BASETEMP, None) is not None:
        tmp_path_factory.getbasetemp().chmod(0o711)


@pytest.fixture(autouse=True)
def _fds_stay_flat() -> Iterator[None]:
    """After each test, no running server's master holds more fds than when it was ready
    (servers a test started itself are checked as it stops them, in finish())."""
    yield
    problems = [f"[{s.log_path}] {p}" for s in list(_LIVE_SERVERS) for p in s.fd_growth()]
    if problems:
        pytest.fail("fd check failed:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _bounded_test() -> Iterator[None]:
    """Fail a test that runs longer than TEST_TIMEOUT seconds instead of hanging."""
    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_pyrt(args: Sequence[str], key: Optional[str] = KEY, timeout: float = 10.0,
             env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run pyrt to completion (for start-up failures); fails the test if it hangs."""
    e = clean_env(key)
    e.update(env or {})
    rc, out, err = run_bounded(args, e, "/", timeout)
    return subprocess.CompletedProcess([str(PYRT), *args], rc, out, err)


def run_bounded(args: Sequence[str], env: dict[str, str], cwd: str,
                timeout: float) -> tuple[int, str, str]:
    """Run `pyrt ARGS` to completion: (exit status, stdout, stderr). Past `timeout` it
    and everything it started are killed and the test fails."""
    if not PYRT.exists():
        pytest.fail(f"{PYRT} does not exist: build it first (make)")
    proc = subprocess.Popen([str(PYRT), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    _OWN_CHILDREN.add(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kids = descendants(proc.pid)
        proc.kill()
        out, err = proc.communicate(timeout=10)
        for p, s in kids:
            if alive(p, s):
                os.kill(p, signal.SIGKILL)
        pytest.fail(f"pyrt {' '.join(args)} still running after {timeout} s; killed.\n"
                    f"stderr: {err.decode(errors='replace')[-3000:]}")
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


class Parallel:
    """Run callables in threads; results in order (exceptions re-raised on get)."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.results: list[Any] = []

    def start(self, fn: Callable[[], Any]) -> int:
        idx = len(self.results)
        self.results.append(None)

        def run() -> None:
            try:
                self.results[idx] = ("ok", fn())
            except BaseException as exc:  # noqa: BLE001 - reported by get()
                self.results[idx] = ("exc", exc)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)
        return idx

    def join(self, timeout: float = 60.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                raise TimeoutError("a parallel request did not finish in time")
        out = []
        for kind, value in self.results:
            if kind == "exc":
                raise value
            out.append(value)
        return out


# --------------------------------------------------------------------------- toolchain

@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Wheels for the build/launch tests, made once per session (toolchain.Wheelhouse):
    pure-Python pyrtdemo, pyrtalpha, pyrtbeta, pyrtgamma and the compiled fastsum."""
    import toolchain  # noqa: PLC0415 - imports conftest itself
    return toolchain.build_wheelhouse(tmp_path_factory.mktemp("wheels"))


# --------------------------------------------------------------------------- pool processes

WORKER_COMM = "pyrt-worker"
ZYGOTE_COMM = "pyrt-zygote"


def proc_comm(pid: int) -> str:
    """The process name (/proc/PID/comm), "" if it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def live_children(pid: int) -> list[int]:
    """Direct children of pid that are alive (not zombies)."""
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st is not None and st[1] == pid and st[0] not in ("Z", "X"):
            out.append(p)
    return out


def pool_processes(server: Server) -> tuple[list[int], list[int], list[int]]:
    """(zygotes, workers, others) among the live descendants of the server's master:
    zygotes and workers are its children named pyrt-zygote and pyrt-worker; others is
    every other live descendant (e.g. a process left over from an execution)."""
    kids = live_children(server.pid)
    zygotes = [p for p in kids if proc_comm(p) == ZYGOTE_COMM]
    workers = [p for p in kids if proc_comm(p) == WORKER_COMM]
    known = set(zygotes) | set(workers)
    others = [p for p, _ in descendants(server.pid) if p not in known and alive(p)]
    return zygotes, workers, others


def wait_pool(server: Server, workers: int, timeout: float = 5.0) -> tuple[list[int], list[int]]:
    """Wait (bounded) until the master has one zygote, exactly `workers` workers and no
    other descendant; fails the test with what it saw otherwise. Returns (zygotes,
    workers), and tracks them for the leftover check at stop."""
    def settled() -> bool:
        z, w, o = pool_processes(server)
        return len(z) == 1 and len(w) == workers and not o
    wait_until(settled, timeout, step=0.1)
    z, w, o = pool_processes(server)
    server.track()
    if not (len(z) == 1 and len(w) == workers and not o):
        pytest.fail(f"after {timeout} s: zygotes {z}, workers {w} (expected {workers}), "
                    f"other descendants {[(p, proc_cmdline(p)) for p in o]}\n"
                    f"{server.log_tail(15)}")
    return z, w
