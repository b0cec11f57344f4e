"""Load from wrk with bench/post.lua (its JSON result line), in the foreground or in a
thread, and the server side's view of each connection (ss lastrcv)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pyrtbench.config import HOST, KEY, LUA


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
