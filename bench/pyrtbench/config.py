"""What every part of the benchmark agrees on: where things are, the servers it knows,
each workload's request and the answer it expects, the timeouts, and its log line."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
APPS = BENCH / "apps"
FUNCTIONS = BENCH / "functions"
LUA = BENCH / "post.lua"
CEILING_SRC = BENCH / "ceiling.c"
PYTHON = "/usr/bin/python3"
HOST = "127.0.0.1"
KEY = "bench-internal-runtime-key"
SERVER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
# The I/O-bound workload (issue 19): the same answers after the function awaits IO_WAIT_MS
# (asyncio.sleep, standing for a call to another service). v5 servers run
# bench/functions/v5 with the wait in the query; the async anchors run bench/functions/io
# (the upstream request and answer, an `async def main`) with it in the request's headers.
IO_SERVERS = ["pyrt-v5", "openruntimes-v5", "aiohttp", "uvicorn"]
IO_WAIT_MS = 50
IO_V5_PATH = f"{V5_PATH}&wait_ms={IO_WAIT_MS}"
IO_HEADER = "x-wait-ms"
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


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
