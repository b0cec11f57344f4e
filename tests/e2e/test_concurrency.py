"""Slow clients don't block others; workers, the queue and its limit."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from conftest import (HOST, KEY, Parallel, RawConn, Server, ServerFactory, post)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(module_factory: ServerFactory) -> Server:
    return module_factory(["--workers", "2"])


def hello_latency(server: Server, log: list | None = None) -> float:
    timing: dict[str, float] = {}
    start = time.monotonic()
    status, _, body = post(server.port, {"path": str(server.fn("hello"))}, timeout=10,
                           timing=timing)
    elapsed = time.monotonic() - start
    assert status == 200 and body == b"hello"
    if log is not None:
        log.append((start, elapsed, timing["connect"]))
    return elapsed


def test_trickling_20mib_body_does_not_block_others(server: Server) -> None:
    prefix = json.dumps({"path": str(server.fn("length")), "file": "index.py",
                         "payload": ""})[:-2].encode()  # ends with '"payload": "'
    total = 20 * MIB - 4096
    filler = total - len(prefix) - 2
    body = prefix + b"z" * filler + b'"}'
    assert len(body) == total
    result: dict = {}

    def trickle() -> None:
        with RawConn(server.port, timeout=30) as conn:
            conn.send((f"POST / HTTP/1.1\r\nHost: x\r\nx-internal-challenge: {KEY}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode())
            for i in range(0, len(body), MIB):
                conn.send(body[i:i + MIB])
                time.sleep(0.1)
            result["sent"] = time.monotonic()
            resp = conn.read_response()
            result["status"] = resp.status
            result["body"] = resp.json() if resp.status == 200 else resp.body[:300]

    t = threading.Thread(target=trickle, daemon=True)
    t0 = time.monotonic()
    t.start()
    timings: list = []
    time.sleep(0.2)
    while t.is_alive() and len(timings) < 500:
        hello_latency(server, timings)
        time.sleep(0.05)
    t.join(30)
    for _ in range(3):
        hello_latency(server, timings)
    assert result.get("status") == 200, result
    assert result["body"]["payload_len"] == filler
    assert len(timings) >= 10
    slow = [(round(s - t0, 2), round(e, 3), round(c, 3)) for s, e, c in timings if e >= 0.5]
    assert not slow, (f"hello requests >= 0.5 s (start offset, latency, of which TCP connect; "
                      f"seconds) while a 20 MiB "
                      f"body trickled in: {slow}; body fully sent at "
                      f"{result['sent'] - t0:.2f} s, {len(timings)} requests")


def test_stalled_and_idle_connections_do_not_block(server: Server) -> None:
    socks = []
    try:
        for i in range(60):
            s = socket.create_connection((HOST, server.port), timeout=5)
            if i % 2:
                s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nx-internal-chal")
            socks.append(s)
        time.sleep(0.2)
        latencies = [hello_latency(server) for _ in range(10)]
        assert max(latencies) < 0.5, latencies
    finally:
        for s in socks:
            s.close()


def two_sleeps(srv: Server, secs: float = 1.0) -> float:
    par = Parallel()
    start = time.monotonic()
    for tag in ("a", "b"):
        par.start(lambda tag=tag: post(srv.port, {"path": str(srv.fn("sleep")),
                                                  "payload": {"sleep": secs, "tag": tag}},
                                       timeout=15))
    results = par.join(20)
    assert [r[0] for r in results] == [200, 200], results
    return time.monotonic() - start


def test_default_workers_under_taskset_is_one(server_factory: ServerFactory) -> None:
    srv = server_factory(prefix=["taskset", "-c", "0"])
    elapsed = two_sleeps(srv)
    assert elapsed >= 1.9, f"two 1 s sleeps took {elapsed:.2f} s: more than one worker"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_default_workers_follows_cpus(server_factory: ServerFactory) -> None:
    srv = server_factory()
    elapsed = two_sleeps(srv)
    assert elapsed < 1.8, f"two 1 s sleeps took {elapsed:.2f} s: serialised on 2 CPUs"


def test_workers_option(server_factory: ServerFactory) -> None:
    srv = server_factory(["--workers", "3"], prefix=["taskset", "-c", "0"])
    par = Parallel()
    start = time.monotonic()
    for i in range(3):
        par.start(lambda i=i: post(srv.port, {"path": str(srv.fn("sleep")),
                                              "payload": {"sleep": 1, "tag": i}}, timeout=15))
    results = par.join(20)
    elapsed = time.monotonic() - start
    assert [r[0] for r in results] == [200] * 3
    assert elapsed < 1.9, f"3 sleeps on 3 workers took {elapsed:.2f} s"


def test_queue_beyond_workers(server_factory: ServerFactory) -> None:
    srv = server_factory(["--workers", "1"])
    par = Parallel()
    start = time.monotonic()
    for i in range(3):
        par.start(lambda i=i: post(srv.port, {"path": str(srv.fn("sleep")),
                                              "payload": {"sleep": 0.5, "tag": i}}, timeout=15))
    results = par.join(20)
    elapsed = time.monotonic() - start
    assert [r[0] for r in results] == [200] * 3
    assert elapsed >= 1.4, f"3 x 0.5 s on one worker took {elapsed:.2f} s"


def test_max_queue_503(server_factory: ServerFactory) -> None:
    srv = server_factory(["--workers", "1", "--max-queue", "1"])
    par = Parallel()
    for i in range(4):
        par.start(lambda i=i: post(srv.port, {"path": str(srv.fn("sleep")),
                                              "payload": {"sleep": 1, "tag": i}}, timeout=15))
        time.sleep(0.1)
    results = par.join(20)
    statuses = sorted(r[0] for r in results)
    assert statuses == [200, 200, 503, 503], results
    for status, _, body in results:
        if status == 503:
            assert json.loads(body) == {"message": "Server busy", "code": 503}
    assert srv.post({"path": str(srv.fn("hello"))})[0] == 200


def test_slow_headers_cut_off_after_read_timeout(server_factory: ServerFactory) -> None:
    # --read-timeout 1: the head must be complete 1 s after its first byte; reads
    # arriving every 0.2 s do not extend it. The server answers (e.g. 408) or closes.
    srv = server_factory(["--workers", "1", "--read-timeout", "1"])
    with RawConn(srv.port, timeout=5) as conn:
        start = time.monotonic()
        cut_at = None
        for byte in b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
            if not conn.send(bytes([byte])):
                cut_at = time.monotonic()
                break
            conn.sock.settimeout(0.2)
            try:
                conn.sock.recv(1, socket.MSG_PEEK)  # data or EOF: the server acted
                cut_at = time.monotonic()
                break
            except socket.timeout:
                pass
            except ConnectionResetError:
                cut_at = time.monotonic()
                break
            if time.monotonic() - start > 6:
                break
        assert cut_at is not None, "slow client never cut off"
        data, closed = conn.read_until_close(3.0)
    elapsed = cut_at - start
    # 1 s by contract; 2x slack plus one read interval.
    assert 0.8 <= elapsed < 2.5, f"cut off after {elapsed:.2f} s"
    assert closed, f"connection not closed after the read timeout; got {data[:200]!r}"
    if data:
        assert data.startswith((b"HTTP/1.1 408", b"HTTP/1.1 400")), data[:200]
    assert post(srv.port, {"path": str(srv.fn("hello"))})[0] == 200


def test_idle_keep_alive_connection_closed(server_factory: ServerFactory) -> None:
    srv = server_factory(["--workers", "1", "--idle-timeout", "1"])
    body = json.dumps({"path": str(srv.fn("hello"))}).encode()
    req = (f"POST / HTTP/1.1\r\nHost: x\r\nx-internal-challenge: {KEY}\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    with RawConn(srv.port, timeout=5) as conn:
        conn.send(req)
        assert conn.read_response().status == 200
        start = time.monotonic()
        assert conn.is_closed(4.0), "idle keep-alive connection not closed"
        elapsed = time.monotonic() - start
    assert 0.8 <= elapsed < 3.0, f"idle connection closed after {elapsed:.2f} s"
