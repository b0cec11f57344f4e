"""The servers compared: how each is started (Spec), one running instance (Server), the
Lab that starts and stops them and reads their logs, and the wait for a first good
answer."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from pyrtbench.config import (APPS, HOST, KEY, OPENRUNTIMES_ENV, OPENRUNTIMES_SH, PYTHON,
                              SERVER_PATH, START_TIMEOUT, STOP_TIMEOUT, UPSTREAM_ANSWER,
                              V5_SECRET)
from pyrtbench.httpclient import Req, http_request
from pyrtbench.procs import (descendants, free_port, identity, reap_orphans, spawn,
                             terminate)


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
        if not terminate(self.proc, grace) and not hung:
            note = (f"{self.log_path.stem}: did not exit within {grace:.0f} s of "
                    f"SIGTERM; killed. Log tail: " + " | ".join(self.log_tail(3).splitlines()))
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


def make_specs(pyrt_bin: Path, ceiling_bin: Path, code: Path,
               openruntimes_src: Optional[Path]) -> dict[str, Spec]:
    apps = str(APPS)

    # Text logs: measure.kill_to_ready_ms reads them (off a terminal the default is JSON;
    # the two cost the same, docs/operating.md).
    def pyrt(port: int, n: int, _d: Path) -> list[str]:
        return [str(pyrt_bin), "serve", "--code-dir", str(code), "--host", HOST,
                "--port", str(port), "--workers", str(n), "--log-format", "text"]

    def pyrt_v5(port: int, n: int, inst: Path) -> list[str]:
        return [str(pyrt_bin), "serve", "--contract", "v5", "--code-dir", str(code / "v5"),
                "--host", HOST, "--port", str(port), "--workers", str(n),
                "--logs-dir", str(inst / "logs"), "--log-format", "text"]

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
        proc, started = spawn(argv, env, log_path, cwd=str(self.work))
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
