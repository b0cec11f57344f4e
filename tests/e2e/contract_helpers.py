"""Helpers for the executor-contract tests (CONTRACT.md section 5): v5 and v2 servers.

`ContractServer` is conftest's `Server` started with `--contract`: one function folder
as the code dir, its own logs dir, stdout (the start line) kept apart from stderr (the
log), and readiness taken from `/__opr/health` (v5) or `/__health` (v2, seed). It is
stopped like every server of the suite: SIGTERM by PID, exit 0, no `[alert]` in the log,
no process left behind.

`execute()` sends one v5 request the way the executor does (secret, Authorization,
optional timeout and logging headers) and returns an `Answer` that keeps repeated
response headers.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import pytest

from conftest import (BAD_LOG_MARKERS, FUNCTIONS, HEALTH_TIMEOUT, HOST, PYRT, Server,
                      _OWN_CHILDREN, chmod_tree, clean_env, finish_servers, free_port, get)

SECRET = "pyrt-v5-secret-" + uuid.uuid4().hex[:16]
V2_KEY = "pyrt-v2-key-" + uuid.uuid4().hex[:16]
START_LINE = "HTTP server successfully started!"
NATIVE_MARKER = ("Native logs detected. Use context.log() or context.error() for better "
                 "experience.")
UNAUTHORIZED = 'Unauthorized. Provide correct "x-open-runtimes-secret" header.'
BAD_TIMEOUT = 'Header "x-open-runtimes-timeout" must be an integer greater than 0.'
RETURN_MISSING = "Return statement missing."
TIMED_OUT = "Execution timed out."
TRUNCATED = "... Log truncated due to size limit (8000 characters)"
MIB = 1024 * 1024

# Variables of the test runner that would change how pyrt picks its contract/entry point.
_CONTRACT_VARS = ("OPEN_RUNTIMES_", "INTERNAL_RUNTIME_")

Headers = Union[Mapping[str, str], Sequence[tuple[str, str]]]


def basic_auth(secret: str) -> str:
    """The Authorization value the executor sends with every v5 execution."""
    return "Basic " + base64.b64encode(("opr:" + secret).encode()).decode()


def contract_env(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """conftest's clean environment without any key, OPEN_RUNTIMES_* or
    INTERNAL_RUNTIME_* variable, plus extra."""
    env = {k: v for k, v in clean_env(None).items() if not k.startswith(_CONTRACT_VARS)}
    env.update(extra or {})
    return env


def v5_env(secret: Optional[str] = SECRET, **extra: str) -> dict[str, str]:
    env: dict[str, str] = {} if secret is None else {"OPEN_RUNTIMES_SECRET": secret}
    env.update(extra)
    return env


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- answers

@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in order, repeats kept
    body: bytes
    seconds: float = 0.0

    def header(self, name: str) -> Optional[str]:
        """The first value of a header, None if absent."""
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def log_id(self) -> Optional[str]:
        return self.header("x-open-runtimes-log-id")

    def __repr__(self) -> str:
        return (f"Answer({self.status}, {self.headers!r}, {self.body[:300]!r}"
                f"{'...' if len(self.body) > 300 else ''})")


def _header_pairs(headers: Optional[Headers]) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def request(port: int, method: str = "POST", path: str = "/",
            body: Union[bytes, str, None] = None, headers: Optional[Headers] = None,
            timeout: float = 30.0) -> Answer:
    """One request on a fresh connection, headers sent exactly as given (plus Host
    unless given, plus Content-Length when body is not None)."""
    pairs = _header_pairs(headers)
    data = body.encode() if isinstance(body, str) else body
    names = {k.lower() for k, _ in pairs}
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    start = time.monotonic()
    try:
        conn.putrequest(method, path, skip_host="host" in names, skip_accept_encoding=True)
        for k, v in pairs:
            conn.putheader(k, v)
        if data is not None and "content-length" not in names:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data if data else None)
        resp = conn.getresponse()
        payload = resp.read()
        return Answer(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], payload,
                      time.monotonic() - start)
    finally:
        conn.close()


def execute(port: int, action: Optional[str] = None, method: str = "POST", path: str = "/",
            body: Union[bytes, str, None] = None, headers: Optional[Headers] = None,
            secret: Optional[str] = SECRET, auth: bool = True,
            timeout_header: Optional[str] = None, logging: Optional[str] = None,
            log_id: Optional[str] = None, timeout: float = 30.0) -> Answer:
    """A v5 execution: x-action, then the user's headers, then what the executor adds."""
    pairs: list[tuple[str, str]] = []
    if action is not None:
        pairs.append(("x-action", action))
    pairs += _header_pairs(headers)
    if logging is not None:
        pairs.append(("x-open-runtimes-logging", logging))
    if log_id is not None:
        pairs.append(("x-open-runtimes-log-id", log_id))
    if secret is not None:
        if auth:
            pairs.append(("Authorization", basic_auth(secret)))
        pairs.append(("x-open-runtimes-secret", secret))
    if timeout_header is not None:
        pairs.append(("x-open-runtimes-timeout", timeout_header))
    return request(port, method, path, body, pairs, timeout)


# --------------------------------------------------------------------------- servers

@dataclass
class ContractServer(Server):
    # None: no --contract flag (pyrt chooses from the environment).
    contract: Optional[str] = "v5"
    logs_dir: Optional[Path] = None
    stdout_path: Optional[Path] = None
    # Readiness: this path must answer 200 (or 503 too when accept_503).
    health_path: str = "/__opr/health"
    accept_503: bool = False
    secret: Optional[str] = SECRET

    def start(self) -> "ContractServer":
        if not PYRT.exists():
            pytest.fail(f"{PYRT} does not exist: build it first (make)")
        self.port = free_port()
        cmd = self.prefix + [str(PYRT), self.subcommand]
        if self.contract is not None:
            cmd += ["--contract", self.contract]
        cmd += ["--code-dir", str(self.code_dir), "--host", HOST, "--port", str(self.port)]
        if self.logs_dir is not None:
            cmd += ["--logs-dir", str(self.logs_dir)]
        cmd += self.args
        env = contract_env(self.env)
        self.log_file = open(self.log_path, "wb")
        assert self.stdout_path is not None
        self.stdout_file = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.stdout_file,
                                     stderr=self.log_file, env=env, cwd="/")
        _OWN_CHILDREN.add(self.proc.pid)
        self.cmd = cmd
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                self.stopped = True
                pytest.fail(f"pyrt exited with {self.proc.returncode} during start-up:\n"
                            f"{' '.join(cmd)}\n{self.log_tail()}\nstdout: {self.stdout_text()}")
            try:
                status, _, _ = get(self.port, self.health_path, timeout=1.0)
                if status == 200 or (self.accept_503 and status == 503):
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"{self.health_path} not ready within {HEALTH_TIMEOUT} s:\n"
                            f"{' '.join(cmd)}\n{self.log_tail()}")
            time.sleep(0.05)
        self.track()
        self.record_fds()
        return self

    def finish(self) -> list[str]:
        problems = super().finish()
        if hasattr(self, "stdout_file"):
            self.stdout_file.close()
        for line in self.stdout_text().splitlines():
            if any(m in line for m in BAD_LOG_MARKERS):
                problems.append(f"bad stdout line: {line}")
        return problems

    def stdout_text(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace") if self.stdout_path else ""
        except OSError:
            return ""

    # --- requests
    def execute(self, action: Optional[str] = None, **kwargs: Any) -> Answer:
        kwargs.setdefault("secret", self.secret)
        return execute(self.port, action, **kwargs)

    def request(self, method: str = "GET", path: str = "/", **kwargs: Any) -> Answer:
        return request(self.port, method, path, **kwargs)

    # --- log files
    def log_file_path(self, log_id: str, kind: str) -> Path:
        assert self.logs_dir is not None
        return self.logs_dir / f"{log_id}_{kind}.log"

    def read_log(self, log_id: Optional[str], kind: str = "logs") -> Optional[str]:
        """Contents of {id}_{kind}.log as it is now (no waiting: the files must be
        complete before the answer); None if it does not exist."""
        assert log_id, f"no log id: {log_id!r}"
        try:
            return self.log_file_path(log_id, kind).read_text()
        except FileNotFoundError:
            return None

    def logs(self, answer_or_id: Union[Answer, str]) -> Optional[str]:
        log_id = answer_or_id if isinstance(answer_or_id, str) else answer_or_id.log_id
        return self.read_log(log_id, "logs")

    def errors(self, answer_or_id: Union[Answer, str]) -> Optional[str]:
        log_id = answer_or_id if isinstance(answer_or_id, str) else answer_or_id.log_id
        return self.read_log(log_id, "errors")

    def log_files(self) -> set[str]:
        assert self.logs_dir is not None
        return {p.name for p in self.logs_dir.iterdir()}


class ContractFactory:
    """Starts contract servers, each on a copy of one function folder; finish() stops
    them all and fails if any misbehaved (like conftest's ServerFactory)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.servers: list[ContractServer] = []
        self.bases: list[Path] = []

    def __call__(self, function: Optional[str] = None, contract: Optional[str] = "v5",
                 env: Optional[Mapping[str, str]] = None, args: Sequence[str] = (),
                 files: Optional[Mapping[str, str]] = None, logs: bool = True,
                 health_path: Optional[str] = None, accept_503: bool = False,
                 secret: Optional[str] = SECRET, code_dir: Optional[Path] = None,
                 subcommand: str = "serve") -> ContractServer:
        """A server on a copy of functions/FUNCTION (or on code_dir as it is), with a
        fresh logs dir beside it (unless logs=False)."""
        base = Path(tempfile.mkdtemp(prefix="pyrt-contract-"))
        self.bases.append(base)
        code = base / "code"
        if code_dir is not None:
            code = code_dir
        elif function is not None:
            shutil.copytree(FUNCTIONS / function, code,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if subcommand == "serve":
            code.mkdir(exist_ok=True)
        for rel, text in (files or {}).items():
            path = code / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        logs_dir = base / "logs" if logs else None
        if logs_dir is not None:
            logs_dir.mkdir()
        if code_dir is None and code.exists():
            chmod_tree(code)
        os.chmod(base, 0o755)
        if logs_dir is not None:
            os.chmod(logs_dir, 0o777)
        if health_path is None:
            health_path = "/__opr/health" if contract in ("v5", None) else "/__health"
        n = len(self.servers)
        server = ContractServer(
            code_dir=code, log_path=self.tmp / f"pyrt-contract-{n}.log", args=list(args),
            env=dict(env or {}), contract=contract, logs_dir=logs_dir,
            stdout_path=self.tmp / f"pyrt-contract-{n}.stdout", health_path=health_path,
            accept_503=accept_503, secret=secret, subcommand=subcommand)
        self.servers.append(server)
        return server.start()

    def finish(self) -> None:
        finish_servers(self.servers, self.bases)


@pytest.fixture(scope="module")
def contract_module_factory(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContractFactory]:
    """Contract servers shared by the tests of one module."""
    factory = ContractFactory(tmp_path_factory.mktemp("pyrt-contract"))
    yield factory
    factory.finish()


@pytest.fixture
def contract_factory(tmp_path: Path) -> Iterator[ContractFactory]:
    """Fresh contract servers for one test."""
    factory = ContractFactory(tmp_path)
    yield factory
    factory.finish()
