"""HTTP/1.x framing: malformed input, limits, keep-alive, pipelining, chunked, 100-continue."""

from __future__ import annotations

import json
import time

import pytest

from conftest import (KEY, WRONG_KEY, RawConn, Server, ServerFactory, http_request,
                      parse_responses, raw_exchange)


@pytest.fixture(scope="module")
def server(module_factory: ServerFactory) -> Server:
    return module_factory(["--workers", "2"])


def hello_body(server: Server) -> bytes:
    return json.dumps({"path": str(server.fn("hello")), "file": "index.py"}).encode()


def echo_body(server: Server, payload: object) -> bytes:
    return json.dumps({"path": str(server.fn("echo")), "file": "index.py",
                       "payload": payload}).encode()


def assert_status_and_close(server: Server, data: bytes, status: int) -> None:
    received, closed = raw_exchange(server.port, data, timeout=5.0)
    responses = parse_responses(received)
    assert responses, f"no response to {data[:120]!r}...; got {received[:300]!r}"
    assert responses[0].status == status, received[:300]
    assert closed, "connection not closed after the error response"
    assert len(responses) == 1, "more than one response"


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ---------------------------------------------------------------- 400: malformed

MALFORMED_LINES = {
    "garbage": b"\x01\x02garbage\r\n\r\n",
    "bad_version": b"POST / HTTX/1.1\r\nHost: x\r\n\r\n",
    "junk_after_version": b"POST / HTTP/1.1 junk\r\nHost: x\r\n\r\n",
    "space_in_method": b"PO ST / HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED_LINES))
def test_malformed_request_line(server: Server, name: str) -> None:
    assert_status_and_close(server, MALFORMED_LINES[name], 400)


def test_header_without_colon(server: Server) -> None:
    body = hello_body(server)
    data = head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                "NoColonHere", f"Content-Length: {len(body)}") + body
    assert_status_and_close(server, data, 400)


@pytest.mark.parametrize("lengths", [
    ["Content-Length: 2", "Content-Length: 3"],
    ["Content-Length: -1"],
    ["Content-Length: abc"],
    ["Content-Length: 2, 3"],
    ["Content-Length: 1e3"],
])
def test_bad_content_length(server: Server, lengths: list[str]) -> None:
    data = head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}", *lengths) + b"{}"
    assert_status_and_close(server, data, 400)


def test_bad_content_length_checked_before_key(server: Server) -> None:
    data = head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {WRONG_KEY}",
                "Content-Length: -5")
    assert_status_and_close(server, data, 400)


@pytest.mark.parametrize("te", ["gzip, chunked", "gzip", "identity", "chunked, gzip"])
def test_unsupported_transfer_encoding(server: Server, te: str) -> None:
    data = head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                f"Transfer-Encoding: {te}") + b"2\r\n{}\r\n0\r\n\r\n"
    assert_status_and_close(server, data, 400)


def test_content_length_with_chunked_is_rejected_or_chunked_wins(server: Server) -> None:
    # RFC 9112 6.3: either reject, or let chunked win; never read Content-Length bytes.
    body = hello_body(server)
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    data = head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                "Content-Length: 3", "Transfer-Encoding: chunked") + chunked
    received, _ = raw_exchange(server.port, data, timeout=5.0)
    responses = parse_responses(received)
    assert responses, received
    assert responses[0].status in (200, 400), received[:300]
    if responses[0].status == 200:
        assert responses[0].body == b"hello"


@pytest.mark.parametrize("chunks", [
    b"zz\r\n{}\r\n0\r\n\r\n",            # size not hex
    b"2\r\n{}XX0\r\n\r\n",               # missing CRLF after data
    b"-2\r\n{}\r\n0\r\n\r\n",            # negative size
])
def test_bad_chunk(server: Server, chunks: bytes) -> None:
    data = head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                "Transfer-Encoding: chunked") + chunks
    assert_status_and_close(server, data, 400)


def test_malformed_without_key_is_400_not_401(server: Server) -> None:
    data = head("POST / HTTP/1.1", "Host: x", "Broken header line")
    assert_status_and_close(server, data, 400)


# ---------------------------------------------------------------- limits

def test_request_line_over_8k_is_414(server: Server) -> None:
    body = hello_body(server)
    data = head(f"POST /{'a' * 9000} HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                f"Content-Length: {len(body)}") + body
    assert_status_and_close(server, data, 414)


def test_long_request_line_under_8k_is_served(server: Server) -> None:
    body = hello_body(server)
    data = http_request(body, path="/" + "a" * 7000)
    with RawConn(server.port) as conn:
        conn.send(data)
        resp = conn.read_response()
    assert resp.status == 200
    assert resp.body == b"hello"


def test_headers_over_64k_is_431(server: Server) -> None:
    body = hello_body(server)
    big = [f"X-Big-{i}: {'v' * 1100}" for i in range(70)]  # ~78 KB, 70 fields
    data = head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}", *big,
                f"Content-Length: {len(body)}") + body
    assert_status_and_close(server, data, 431)


def test_more_than_100_fields_is_431(server: Server) -> None:
    body = hello_body(server)
    many = [f"X-F-{i}: v" for i in range(150)]
    data = head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}", *many,
                f"Content-Length: {len(body)}") + body
    assert_status_and_close(server, data, 431)


def test_moderate_headers_are_served(server: Server) -> None:
    body = hello_body(server)
    extra = [f"X-M-{i}: {'v' * 400}" for i in range(80)]  # ~33 KB, 83 fields
    with RawConn(server.port) as conn:
        conn.send(http_request(body, extra=extra))
        resp = conn.read_response()
    assert resp.status == 200
    assert resp.body == b"hello"


# ---------------------------------------------------------------- connection reuse

def test_keep_alive(server: Server) -> None:
    with RawConn(server.port) as conn:
        for i in range(3):
            assert conn.send(http_request(echo_body(server, f"ka-{i}"))), f"send {i} failed"
            resp = conn.read_response()
            assert resp.status == 200
            assert resp.json()["payload"] == f"ka-{i}"
            assert (resp.header("connection") or "").lower() != "close"


def test_connection_close_is_honoured(server: Server) -> None:
    with RawConn(server.port) as conn:
        conn.send(http_request(hello_body(server), extra=["Connection: close"]))
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.body == b"hello"
        assert conn.is_closed(3.0), "server kept the connection open after Connection: close"


def test_pipelining_in_order(server: Server) -> None:
    # The first request is the slowest: answers must still come back in request order.
    reqs = b""
    for tag, secs in (("first", 0.6), ("second", 0.2), ("third", 0.0)):
        body = json.dumps({"path": str(server.fn("sleep")), "file": "index.py",
                           "payload": {"sleep": secs, "tag": tag}}).encode()
        reqs += http_request(body)
    with RawConn(server.port, timeout=10.0) as conn:
        conn.send(reqs)
        tags = []
        for _ in range(3):
            resp = conn.read_response()
            assert resp.status == 200, resp.body
            tags.append(resp.json()["tag"])
    assert tags == ["first", "second", "third"]


def test_pipelined_error_does_not_answer_later_requests(server: Server) -> None:
    good = http_request(hello_body(server))
    bad = b"POST / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"
    received, closed = raw_exchange(server.port, good + bad + good, timeout=5.0)
    statuses = [r.status for r in parse_responses(received)]
    assert statuses == [200, 400], received[:500]
    assert closed


def test_pipelined_request_finds_the_worker_free(server_factory: ServerFactory) -> None:
    """--max-queue 0 and one worker: a request pipelined right behind another must get
    the worker its predecessor just released, not 503."""
    server = server_factory(["--workers", "1", "--max-queue", "0"])
    body = json.dumps({"file": "hello/index.py"}).encode()
    one = (b"POST / HTTP/1.1\r\nHost: x\r\nx-internal-challenge: " + KEY.encode() +
           b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with RawConn(server.port) as conn:
        conn.send(one * 5)
        statuses = [conn.read_response().status for _ in range(5)]
    assert statuses == [200] * 5


def test_head_gets_no_body_and_keep_alive_holds(server_factory: ServerFactory) -> None:
    server = server_factory()
    with RawConn(server.port) as conn:
        conn.send(b"HEAD /__health HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /__health HTTP/1.1\r\nHost: x\r\n\r\n")
        head = conn.read_response(head_only=True)
        assert head.status == 405
        assert int(head.header("content-length") or "0") > 0
        follow = conn.read_response()
        assert follow.status == 200, "the HEAD answer's body spilled into the next one"
        assert follow.json() == {"status": "ok"}


# ---------------------------------------------------------------- chunked bodies

def test_chunked_request_body(server: Server) -> None:
    body = echo_body(server, "chunked-payload")
    parts = [body[:10], body[10:25], body[25:]]
    chunked = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
    data = head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                "Transfer-Encoding: chunked") + chunked
    with RawConn(server.port) as conn:
        conn.send(data)
        resp = conn.read_response()
        assert resp.status == 200, resp.body
        assert resp.json()["payload"] == "chunked-payload"
        # and the connection is still usable afterwards
        conn.send(http_request(hello_body(server)))
        assert conn.read_response().body == b"hello"


def test_chunked_with_extensions_and_trailers(server: Server) -> None:
    body = echo_body(server, "ext")
    chunked = (f"{len(body[:7]):x};name=value\r\n".encode() + body[:7] + b"\r\n"
               + f"{len(body[7:]):X}\r\n".encode() + body[7:] + b"\r\n"
               + b"0;last\r\nX-Trailer: t\r\n\r\n")
    data = head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                "Transfer-Encoding: chunked") + chunked
    with RawConn(server.port) as conn:
        conn.send(data)
        resp = conn.read_response()
    assert resp.status == 200, resp.body
    assert resp.json()["payload"] == "ext"


def test_chunked_body_sent_slowly(server: Server) -> None:
    body = echo_body(server, "slow")
    with RawConn(server.port) as conn:
        conn.send(head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                       "Transfer-Encoding: chunked"))
        for i in range(0, len(body), 20):
            part = body[i:i + 20]
            conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            time.sleep(0.02)
        conn.send(b"0\r\n\r\n")
        resp = conn.read_response()
    assert resp.status == 200
    assert resp.json()["payload"] == "slow"


# ---------------------------------------------------------------- Expect: 100-continue

def test_expect_100_continue(server: Server) -> None:
    body = hello_body(server)
    with RawConn(server.port) as conn:
        conn.send(head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {KEY}",
                       f"Content-Length: {len(body)}", "Expect: 100-continue"))
        interim = conn.read_response(skip_interim=False)
        assert interim.status == 100, f"expected 100 Continue, got {interim.status}"
        conn.send(body)
        resp = conn.read_response()
    assert resp.status == 200
    assert resp.body == b"hello"


def test_expect_100_continue_wrong_key_gets_401_without_100(server: Server) -> None:
    body = hello_body(server)
    with RawConn(server.port) as conn:
        conn.send(head("POST / HTTP/1.1", "Host: x", f"x-internal-challenge: {WRONG_KEY}",
                       f"Content-Length: {len(body)}", "Expect: 100-continue"))
        first = conn.read_response(skip_interim=False)
        assert first.status == 401, f"first response was {first.status}, not 401"
        assert first.json() == {"message": "Unauthorized", "code": 401}


# ---------------------------------------------------------------- HTTP/1.0

def test_http10_answered_and_closed(server: Server) -> None:
    data = http_request(hello_body(server), version="HTTP/1.0")
    received, closed = raw_exchange(server.port, data, timeout=5.0)
    responses = parse_responses(received)
    assert responses and responses[0].status == 200, received[:300]
    assert responses[0].body == b"hello"
    assert closed, "HTTP/1.0 connection without keep-alive was not closed"


def test_http10_without_body(server: Server) -> None:
    # No Content-Length, no Transfer-Encoding: a request body of length 0.
    data = head("POST / HTTP/1.0", f"x-internal-challenge: {KEY}")
    received, closed = raw_exchange(server.port, data, timeout=5.0)
    responses = parse_responses(received)
    assert responses, received
    assert responses[0].status == 500
    assert responses[0].json() == {"message": "no data received", "code": 500}
