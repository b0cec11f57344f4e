"""A client that half-closes after its request is answered; one that leaves mid-execution
still gets its access line (issue 17, item 7).

Half-close: the client sends a complete request, then shutdown(SHUT_WR) -- it has sent
all it will send, and reads the answer. pyrt answers it (Connection: close, since
nothing more can come) and then closes. A client that resets its connection while its
execution is queued or running is logged with outcome client_gone (status 499)."""

from __future__ import annotations

import re
import socket
import struct
import time
from typing import Any

import pytest

from conftest import (HOST, RawConn, Server, ServerFactory, get, http_request,
                      parse_responses)
from contract_helpers import SECRET, ContractFactory, contract_factory, v5_env

__all__ = ["contract_factory"]  # a fixture used below

HALF_CLOSED_CLIENTS = 50


def half_closed_exchange(port: int, data: bytes, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Sends data, half-closes, reads until the server closes: (received, closed)."""
    conn = RawConn(port, timeout)
    try:
        conn.send(data)
        conn.sock.shutdown(socket.SHUT_WR)
        return conn.read_until_close(timeout)
    finally:
        conn.close()


def seed_body(server: Server, name: str, payload: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"path": str(server.fn(name)), "file": "index.py"}
    if payload is not None:
        body["payload"] = payload
    return body


@pytest.fixture(scope="module")
def server(module_factory: ServerFactory) -> Server:
    return module_factory(["--workers", "2"])


def test_half_closed_clients_are_answered(server: Server) -> None:
    """50 clients at once, each sending one request and half-closing: every one gets
    its 200 -- queued ones too (2 workers) -- and then the server closes. (An answer may
leave before the FIN is read: then it is a keep-alive one, and the FIN closes.)"""
    conns = [RawConn(server.port, 20.0) for _ in range(HALF_CLOSED_CLIENTS)]
    try:
        request = http_request(seed_body(server, "hello"))
        for c in conns:
            assert c.send(request)
            c.sock.shutdown(socket.SHUT_WR)
        answered = 0
        for c in conns:
            data, closed = c.read_until_close(20.0)
            responses = parse_responses(data)
            assert closed, "the server kept a half-closed connection open after answering"
            assert [r.status for r in responses] == [200], data[:300]
            answered += 1
    finally:
        for c in conns:
            c.close()
    assert answered == HALF_CLOSED_CLIENTS


def test_half_close_during_a_slow_execution(server: Server) -> None:
    """The FIN arrives while the function runs: the answer still comes."""
    data, closed = half_closed_exchange(
        server.port, http_request(seed_body(server, "sleep", {"sleep": 0.5, "tag": "t"})))
    responses = parse_responses(data)
    assert closed
    assert [r.status for r in responses] == [200]
    assert responses[0].json()["tag"] == "t"
    assert responses[0].header("connection") == "close"  # the FIN came first


def test_half_close_after_pipelined_requests(server: Server) -> None:
    """Three pipelined requests, then the half-close: three answers in order, the last
    one saying Connection: close."""
    requests = b"".join(http_request(seed_body(server, "echo", {"n": i})) for i in range(3))
    data, closed = half_closed_exchange(server.port, requests)
    responses = parse_responses(data)
    assert closed
    assert [r.status for r in responses] == [200, 200, 200], data[:500]
    assert responses[-1].header("connection") == "close"
    assert responses[0].header("connection") != "close"


def test_half_close_with_an_incomplete_request_closes(server: Server) -> None:
    """A request cut short by the half-close can never complete: the connection closes
    (no answer, no wait for the read timeout)."""
    start = time.monotonic()
    data, closed = half_closed_exchange(server.port, http_request({"a": 1})[:-3], timeout=5.0)
    assert closed and time.monotonic() - start < 3.0
    assert data == b""


def test_half_close_v5(contract_factory: ContractFactory) -> None:
    v5 = contract_factory("v5_actions", env=v5_env(OPEN_RUNTIMES_ENTRYPOINT="handler.py"),
                          args=["--workers", "1"])
    request = (f"GET /x HTTP/1.1\r\nHost: {HOST}\r\nx-open-runtimes-secret: {SECRET}\r\n"
               "x-action: sleep\r\nx-seconds: 0.3\r\n\r\n").encode()
    for _ in range(5):
        data, closed = half_closed_exchange(v5.port, request)
        responses = parse_responses(data)
        assert closed
        assert [r.status for r in responses] == [200], data[:300]


def access_outcomes(server: Server, req_id: str, timeout: float) -> list[tuple[str, str]]:
    return [(m["status"], m["outcome"]) for m in server.access_lines(req_id, timeout)]


def test_client_reset_mid_execution_is_logged_client_gone(server: Server) -> None:
    """The client resets its connection while its execution runs: one access line,
    outcome client_gone, status 499 -- and none when the execution ends later."""
    req_id = "gone-reset-1"
    conn = RawConn(server.port, 5.0)
    conn.send(http_request(seed_body(server, "sleep", {"sleep": 1.0}),
                           extra=[f"x-request-id: {req_id}"]))
    time.sleep(0.3)  # it is running now
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # RST
    assert access_outcomes(server, req_id, 5.0) == [("499", "client_gone")]
    time.sleep(2.0)  # the execution has ended: its answer was dropped, not logged
    assert access_outcomes(server, req_id, 0.1) == [("499", "client_gone")]
    # Counted once, as a 4xx.
    status, _, body = get(server.port, "/__metrics")
    assert status == 200
    assert re.search(r'^pyrt_executions_total\{outcome="client_gone",status_class="4xx"\} '
                     r'[1-9]\d*$', body.decode(), re.M), body.decode()


def test_client_gone_while_queued_is_logged(server_factory: ServerFactory) -> None:
    """The execution never started (one worker, busy): client_gone all the same."""
    one = server_factory(["--workers", "1"])
    busy = RawConn(one.port, 10.0)
    try:
        busy.send(http_request(seed_body(one, "sleep", {"sleep": 1.0})))
        time.sleep(0.2)
        conn = RawConn(one.port, 5.0)
        conn.send(http_request(seed_body(one, "hello"), extra=["x-request-id: gone-queued"]))
        time.sleep(0.2)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        assert access_outcomes(one, "gone-queued", 5.0) == [("499", "client_gone")]
        assert busy.read_response().status == 200
    finally:
        busy.close()


def test_client_closed_mid_execution_has_an_access_line(server: Server) -> None:
    """A plain close() cannot be told from a half-close until a write fails: the
    execution is answered (into the void) and logged with its own outcome."""
    req_id = "gone-close-1"
    conn = RawConn(server.port, 5.0)
    conn.send(http_request(seed_body(server, "sleep", {"sleep": 0.5}),
                           extra=[f"x-request-id: {req_id}"]))
    time.sleep(0.2)
    conn.close()
    assert access_outcomes(server, req_id, 5.0) == [("200", "ok")]


def test_client_reset_mid_execution_v5(contract_factory: ContractFactory) -> None:
    v5 = contract_factory("v5_actions", env=v5_env(OPEN_RUNTIMES_ENTRYPOINT="handler.py"),
                          args=["--workers", "1"])
    conn = RawConn(v5.port, 5.0)
    conn.send((f"POST /x HTTP/1.1\r\nHost: {HOST}\r\nx-open-runtimes-secret: {SECRET}\r\n"
               "x-action: sleep\r\nx-seconds: 1\r\nx-request-id: gone-v5\r\n"
               "Content-Length: 0\r\n\r\n").encode())
    time.sleep(0.3)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    assert access_outcomes(v5, "gone-v5", 5.0) == [("499", "client_gone")]
