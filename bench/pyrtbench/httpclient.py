"""A small HTTP/1.1 client on raw sockets: one request on a fresh connection, timed from
the connect to the end of the answer, and a wait for a server's health. Shared by the
benchmark and the soak."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Callable, Optional

from pyrtbench.config import HOST, SEED_HEADERS


@dataclass(frozen=True)
class Req:
    """One request: the body, and the path and headers it goes with (the seed's by
    default). Host and Content-Length are added."""
    body: bytes
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = SEED_HEADERS
    method: str = "POST"


def http_request(port: int, req: Req, timeout: float,
                 on_connect: Optional[Callable[[int], None]] = None) -> tuple[int, bytes, float]:
    """One request (a POST unless req says) on a fresh connection: (status, body, seconds
    from connect to the end of the answer). Raises OSError (refused, reset, timed out) or
    ValueError (bad answer)."""
    start = time.monotonic()
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if on_connect is not None:
            on_connect(s.getsockname()[1])
        lines = [f"{req.method} {req.path} HTTP/1.1", f"Host: {HOST}:{port}",
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


HEALTH = Req(b"", "/__health", (), "GET")


def wait_healthy(port: int, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Polls GET /__health until it answers 200 (True), timeout passes or alive() turns
    false (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if http_request(port, HEALTH, timeout=1.0)[0] == 200:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return False
