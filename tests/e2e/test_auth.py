"""The key and the body limit are checked before the body is read."""

from __future__ import annotations

import json
import time

import pytest

from conftest import KEY, WRONG_KEY, RawConn, Server, ServerFactory, http_request

MAX_BODY = 4096


@pytest.fixture(scope="module")
def server(module_factory: ServerFactory) -> Server:
    return module_factory(["--max-body", str(MAX_BODY)])


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_wrong_key_answered_before_body(server: Server) -> None:
    with RawConn(server.port, timeout=5.0) as conn:
        start = time.monotonic()
        conn.send(head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {WRONG_KEY}",
                       "Content-Length: 1000000"))
        resp = conn.read_response()
        elapsed = time.monotonic() - start
    assert resp.status == 401
    assert resp.json() == {"message": "Unauthorized", "code": 401}
    assert elapsed < 1.0, f"401 took {elapsed:.2f} s: the server waited for the body"


def test_missing_key_answered_before_body(server: Server) -> None:
    with RawConn(server.port, timeout=5.0) as conn:
        start = time.monotonic()
        conn.send(head("POST / HTTP/1.1", "Host: x", "Content-Length: 1000000"))
        resp = conn.read_response()
        elapsed = time.monotonic() - start
    assert resp.status == 401
    assert elapsed < 1.0, f"401 took {elapsed:.2f} s"


def test_wrong_key_chunked_answered_before_body(server: Server) -> None:
    with RawConn(server.port, timeout=5.0) as conn:
        start = time.monotonic()
        conn.send(head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {WRONG_KEY}",
                       "Transfer-Encoding: chunked") + b"10\r\n0123")
        resp = conn.read_response()
        elapsed = time.monotonic() - start
    assert resp.status == 401
    assert elapsed < 1.0


def test_declared_length_over_max_body_is_413_at_once(server: Server) -> None:
    with RawConn(server.port, timeout=5.0) as conn:
        start = time.monotonic()
        conn.send(head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                       f"Content-Length: {MAX_BODY + 1}"))
        resp = conn.read_response()
        elapsed = time.monotonic() - start
        assert resp.status == 413
        assert resp.json() == {"message": "Request body too large", "code": 413}
        assert elapsed < 1.0, f"413 took {elapsed:.2f} s: the server waited for the body"
        assert conn.is_closed(3.0), "connection not closed after 413"


def test_declared_length_over_max_body_with_expect_gets_no_100(server: Server) -> None:
    with RawConn(server.port, timeout=5.0) as conn:
        conn.send(head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                       f"Content-Length: {MAX_BODY * 10}", "Expect: 100-continue"))
        first = conn.read_response(skip_interim=False)
    assert first.status == 413, f"first response {first.status}"


def test_413_when_body_is_sent_too(server: Server) -> None:
    body = json.dumps({"path": str(server.fn("echo")), "payload": "x" * (MAX_BODY * 4)})
    with RawConn(server.port, timeout=5.0) as conn:
        conn.send(http_request(body))
        resp = conn.read_response()
    assert resp.status == 413
    assert resp.json() == {"message": "Request body too large", "code": 413}


def test_chunked_body_over_max_body_is_413(server: Server) -> None:
    with RawConn(server.port, timeout=5.0) as conn:
        conn.send(head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                       "Transfer-Encoding: chunked"))
        chunk = b"x" * 1024
        resp = None
        for _ in range(MAX_BODY // 1024 + 4):
            if not conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"):
                break
        conn.send(b"0\r\n\r\n")
        resp = conn.read_response()
    assert resp.status == 413
    assert resp.json() == {"message": "Request body too large", "code": 413}


def test_body_of_exactly_max_body_is_accepted(server: Server) -> None:
    prefix = {"path": str(server.fn("length")), "file": "index.py", "payload": ""}
    overhead = len(json.dumps(prefix).encode())
    prefix["payload"] = "y" * (MAX_BODY - overhead)
    body = json.dumps(prefix).encode()
    assert len(body) == MAX_BODY
    status, _, parsed = server.post_json(body)
    assert status == 200, parsed
    assert parsed["payload_len"] == MAX_BODY - overhead


def test_server_still_serves_after_rejections(server: Server) -> None:
    status, _, body = server.post({"path": str(server.fn("hello"))})
    assert status == 200
    assert body == b"hello"


def test_response_over_max_body_is_500(server: Server) -> None:
    status, _, body = server.post({"path": str(server.fn("responses")),
                                   "payload": {"case": "big", "n": MAX_BODY * 3}})
    assert status == 500, body[:200]
    parsed = json.loads(body)
    assert parsed["code"] == 500 and parsed["message"], parsed
    assert len(body) < MAX_BODY
    status, _, body = server.post({"path": str(server.fn("responses")),
                                   "payload": {"case": "big", "n": MAX_BODY - 100}})
    assert status == 200 and len(body) == MAX_BODY - 100
