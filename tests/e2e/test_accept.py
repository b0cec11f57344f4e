"""The master out of file descriptors: accept() failing with EMFILE backs off and is
logged at a bounded rate, and the server answers again once descriptors are back
(issue 17: a function that lowered the master's RLIMIT_NOFILE made it log `accept: too
many open files` in a tight loop, 2 GB in 20 s).

The test lowers the limit itself, with resource.prlimit on the master's pid (root)."""

from __future__ import annotations

import os
import resource
import time

from conftest import RawConn, Server, ServerFactory, get, http_request

CLIENTS = 20
WATCH_SECONDS = 2.5
MAX_ACCEPT_LINES = 3  # the first report, then one per 5 s at most: 2x slack


def accept_lines(server: Server) -> list[str]:
    return [ln.msg for ln in server.log_lines() if ln.msg.startswith("accept:")]


def test_out_of_fds_backs_off_and_recovers(server_factory: ServerFactory) -> None:
    server = server_factory(["--workers", "1"])
    assert get(server.port, "/__health")[0] == 200
    soft, hard = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
    open_now = len(os.listdir(f"/proc/{server.pid}/fd"))
    # Below what it holds, as the attack did ((8, 8)): no accept can succeed, and
    # libuv's spare-descriptor trick (close one, accept, close) cannot help either.
    resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (open_now - 1, hard))
    conns: list[RawConn] = []
    try:
        request = http_request(None, key=None, path="/__health", method="GET")
        for _ in range(CLIENTS):
            c = RawConn(server.port, 15.0)  # connects: the kernel's backlog takes it
            c.send(request)
            conns.append(c)
        time.sleep(WATCH_SECONDS)
        lines = accept_lines(server)
        assert 1 <= len(lines) <= MAX_ACCEPT_LINES, lines[:10]
        assert "Too many open files" in lines[0]
        assert server.proc is not None and server.proc.poll() is None
    finally:
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (soft, hard))
    # Descriptors are back: the connections that waited in the backlog are taken and
    # answered (within the back-off's cap of 1 s, with slack), and new ones too.
    try:
        for c in conns:
            assert c.read_response().status == 200
    finally:
        for c in conns:
            c.close()
    assert get(server.port, "/__health", timeout=5.0)[0] == 200
    assert len(accept_lines(server)) <= MAX_ACCEPT_LINES + 1
    assert server.wait_log(lambda ln: ln.msg == "accept: accepting connections again", 5.0)
