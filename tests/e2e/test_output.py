"""User output goes to the log tagged with the request id, never into the body."""

from __future__ import annotations

import uuid

import pytest

from conftest import (ACCESS_RE, LOG_RE, REQUEST_ID_RE, WRONG_KEY, Server, ServerFactory)


@pytest.fixture(scope="module")
def server(module_factory: ServerFactory) -> Server:
    return module_factory(["--workers", "2"])


@pytest.mark.parametrize("how,stream", [
    ("print", "stdout"),
    ("stderr", "stderr"),
    ("os_write", "stdout"),
    ("os_write_stderr", "stderr"),
    ("child", "stdout"),
    ("child_stderr", "stderr"),
    ("libc", "stdout"),
])
def test_output_goes_to_log_tagged(server: Server, how: str, stream: str) -> None:
    marker = f"marker-{how}-{uuid.uuid4().hex}"
    status, headers, body = server.call_raw("output", {"how": how, "marker": marker})
    assert status == 200, body
    assert body == b"done"
    assert marker.encode() not in body
    assert all(marker not in v for v in headers.values())
    req_id = headers.get("x-request-id")
    assert req_id and REQUEST_ID_RE.match(req_id), req_id
    expected = f"req={req_id} {stream}: {marker}"
    lines = server.wait_log(lambda ln: ln.msg == expected)
    assert len(lines) == 1, (f"expected one log line {expected!r}; lines with the marker: "
                             f"{[l for l in server.log_text().splitlines() if marker in l]}")
    assert lines[0].role.startswith("worker"), lines[0].raw


def test_unterminated_line_is_logged_with_its_request(server_factory: ServerFactory) -> None:
    # Own server: a partial line left in a worker's buffer would leak into later tests.
    srv = server_factory(["--workers", "1"])
    marker = f"partial-{uuid.uuid4().hex}"
    status, headers, _ = srv.call_raw("output", {"how": "print_noflush", "marker": marker})
    assert status == 200
    req_id = headers["x-request-id"]
    nxt = f"next-{uuid.uuid4().hex}"
    _, headers2, _ = srv.call_raw("output", {"how": "print", "marker": nxt})
    expected = f"req={req_id} stdout: {marker}"
    assert srv.wait_log(lambda ln: ln.msg == expected), \
        f"no {expected!r}; lines with it: {[l for l in srv.log_text().splitlines() if marker in l]}"
    expected2 = f"req={headers2['x-request-id']} stdout: {nxt}"
    assert srv.wait_log(lambda ln: ln.msg == expected2), \
        f"no {expected2!r}; lines with it: {[l for l in srv.log_text().splitlines() if nxt in l]}"


def test_multiple_lines_each_tagged(server: Server) -> None:
    marker = f"multi-{uuid.uuid4().hex}"
    status, headers, _ = server.call_raw("output", {"how": "many", "marker": marker, "n": 5})
    assert status == 200
    req_id = headers["x-request-id"]
    lines = server.wait_log(lambda ln: marker in ln.msg, count=5)
    assert [ln.msg for ln in lines] == [f"req={req_id} stdout: {marker}-{i}" for i in range(5)]


def test_long_line_is_split(server: Server) -> None:
    marker = f"long-{uuid.uuid4().hex}"
    n = 200 * 1024
    status, headers, body = server.call_raw("output", {"how": "long", "marker": marker, "n": n})
    assert status == 200 and body == b"done"
    prefix = f"req={headers['x-request-id']} stdout: "
    lines = server.wait_log(lambda ln: ln.msg.startswith(prefix), count=4)
    texts = [ln.msg[len(prefix):] for ln in lines]
    assert len(texts) >= 4, f"{len(texts)} lines for a {n}-byte line"
    assert all(len(t.encode()) <= 64 * 1024 for t in texts), [len(t) for t in texts]
    assert "".join(texts) == marker + "L" * n


def test_client_request_id_is_kept(server: Server) -> None:
    rid = "client-id_1.2-" + uuid.uuid4().hex[:6]
    marker = f"kept-{uuid.uuid4().hex}"
    status, headers, _ = server.call_raw("output", {"how": "print", "marker": marker},
                                         headers={"x-request-id": rid})
    assert status == 200
    assert headers["x-request-id"] == rid
    assert server.wait_log(lambda ln: ln.msg == f"req={rid} stdout: {marker}")


def test_client_request_id_of_128_chars_is_kept(server: Server) -> None:
    rid = ("a" * 120) + uuid.uuid4().hex[:8]
    assert len(rid) == 128
    _, headers, _ = server.call_raw("hello", headers={"x-request-id": rid})
    assert headers["x-request-id"] == rid


@pytest.mark.parametrize("bad", ["a" * 200, "a" * 129, "has spaces in it", "semi;colon",
                                 "quote\"", "uni\u00e9"])
def test_invalid_request_id_is_replaced(server: Server, bad: str) -> None:
    headers_in = {"x-request-id": bad.encode("utf-8").decode("latin-1")}
    status, headers, _ = server.call_raw("hello", headers=headers_in)
    assert status == 200
    rid = headers.get("x-request-id", "")
    assert rid != bad and rid != headers_in["x-request-id"]
    assert REQUEST_ID_RE.match(rid), rid


def test_generated_ids_unique(server: Server) -> None:
    ids = []
    for _ in range(50):
        status, headers, _ = server.call_raw("hello")
        assert status == 200
        ids.append(headers.get("x-request-id", ""))
    assert all(REQUEST_ID_RE.match(i) for i in ids), ids
    assert len(set(ids)) == 50


def test_access_line_per_request(server: Server) -> None:
    ids = []
    for _ in range(5):
        _, headers, _ = server.call_raw("hello")
        ids.append(headers["x-request-id"])
    for rid in ids:
        access = server.access_lines(rid)
        assert len(access) == 1, f"access lines for {rid}: {access}"
        m = access[0]
        assert (m["method"], m["path"], m["status"], m["outcome"]) == ("POST", "/", "200", "ok")
        assert m["worker"].isdigit(), m.group(0)
    assert all(ln.role == "master" for ln in server.log_lines()
               if ln.msg.startswith("access "))


def test_access_line_for_error_and_rejected(server: Server) -> None:
    _, headers, _ = server.call_raw("raises", {"kind": "value"}, path="/some/path")
    access = server.access_lines(headers["x-request-id"])
    assert len(access) == 1, access
    assert (access[0]["path"], access[0]["status"], access[0]["outcome"]) == \
        ("/some/path", "500", "error")

    _, headers, _ = server.call_raw("hello", key=WRONG_KEY)
    rid = headers.get("x-request-id")
    assert rid, "401 response without x-request-id"
    access = server.access_lines(rid)
    assert len(access) == 1, access
    assert (access[0]["status"], access[0]["outcome"]) == ("401", "unauthorized")


def test_every_log_line_has_the_format(server: Server) -> None:
    server.call_raw("output", {"how": "print", "marker": "format-check"})
    server.wait_log(lambda ln: "format-check" in ln.msg)
    bad = [ln for ln in server.log_text().splitlines() if not LOG_RE.match(ln)]
    assert not bad, f"log lines not in '<time> [<level>] <role> <pid>: <msg>' form: {bad[:10]}"
    access = [ln.msg for ln in server.log_lines() if ln.msg.startswith("access ")]
    assert access and all(ACCESS_RE.match(a) for a in access), \
        [a for a in access if not ACCESS_RE.match(a)][:5]


def test_output_before_a_hang_is_logged(server_factory: ServerFactory) -> None:
    server = server_factory(files={"hangs/index.py": (
        "import time\n\n\ndef main(req, res):\n"
        "    print('printed-before-the-hang')\n"
        "    time.sleep(60)\n")})
    status, headers, _ = server.post({"file": "hangs/index.py", "timeout": 1})
    assert status == 500
    req_id = headers["x-request-id"]
    lines = server.wait_log(lambda ln: "printed-before-the-hang" in ln.msg, timeout=5)
    assert lines, "output written before the deadline was lost"
    assert f"req={req_id} stdout: printed-before-the-hang" in lines[0].msg
