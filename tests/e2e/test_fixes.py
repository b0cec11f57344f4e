"""Behaviours found wrong by the documentation review, each pinned down here: the
zygote's privileges, output before a hang, HEAD framing, response header names,
--user without root, a request pipelined behind a freed worker, the Host header of
`pyrt call`, and SIGHUP."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (KEY, PYRT, RawConn, ServerFactory, clean_env, make_code_dir,
                      run_bounded)

ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody").pw_uid

WHO_AT_IMPORT = """\
import os

IMPORT_UID = os.getuid()
IMPORT_PID = os.getpid()


def main(req, res):
    return res.json({"import_uid": IMPORT_UID, "uid": os.getuid(),
                     "imported_in_worker": IMPORT_PID == os.getpid()})
"""


@pytest.mark.skipif(not ROOT, reason="--user needs root")
def test_preload_runs_as_the_user(server_factory: ServerFactory) -> None:
    """--preload imports the entry point in the zygote: that import is user code too,
    and must not run as root."""
    server = server_factory(["--preload", "--user", "nobody"],
                            files={"index.py": WHO_AT_IMPORT})
    status, _, body = server.post_json({"file": "index.py"})
    assert status == 200, body
    assert body["imported_in_worker"] is False, "preloaded in the zygote"
    assert body["import_uid"] == NOBODY and body["uid"] == NOBODY


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


def test_a_bad_header_name_is_named_and_keeps_the_worker(server_factory: ServerFactory) -> None:
    server = server_factory(["--workers", "1"], files={"hdr/index.py": (
        "import os\n\n\ndef main(req, res):\n"
        "    if 'name' in req.payload:\n"
        "        return res.send('x', headers={req.payload['name']: req.payload['value']})\n"
        "    return res.json({'pid': os.getpid()})\n")})
    _, _, first = server.post_json({"file": "hdr/index.py"})
    for name, value, says in (("X Bad", "v", "is not an HTTP token"),
                              ("X-Nul", "a\0b", "contains a NUL character"),
                              ("", "v", "is not an HTTP token")):
        status, _, body = server.post_json({"file": "hdr/index.py",
                                            "payload": {"name": name, "value": value}})
        assert status == 500 and says in body["message"], body
        assert repr(name) in body["message"]
    _, _, after = server.post_json({"file": "hdr/index.py"})
    assert after["pid"] == first["pid"], "the worker was replaced"


@pytest.mark.skipif(not ROOT, reason="needs root to start pyrt as another user")
def test_user_without_root_is_refused_at_start(tmp_path: Path) -> None:
    code = make_code_dir()
    proc = subprocess.run(
        [str(PYRT), "serve", "--code-dir", str(code), "--host", "127.0.0.1", "--port", "0",
         "--user", "root"],
        env=clean_env(KEY), capture_output=True, text=True, timeout=30, cwd="/",
        preexec_fn=lambda: (os.setgid(NOBODY), os.setuid(NOBODY)))
    assert proc.returncode == 1, proc.stderr
    assert "--user root: switching users needs root" in proc.stderr
    rc, _, err = run_bounded(["serve", "--code-dir", str(code), "--user", "pyrt-no-such-user"],
                             clean_env(KEY), "/", 30)
    assert rc == 1 and "--user pyrt-no-such-user: no such user" in err


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


def test_call_sends_the_port_in_host() -> None:
    """pyrt call's Host header names the port, as HTTP/1.1 asks."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve_once() -> None:
        conn, _ = listener.accept()
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        seen.append(data)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()

    t = threading.Thread(target=serve_once, daemon=True)
    t.start()
    rc, out, err = run_bounded(["call", f"http://127.0.0.1:{port}/x", "--key", "k"],
                               clean_env(None), "/", 30)
    t.join(5)
    listener.close()
    assert (rc, out) == (0, "ok"), err
    assert f"\r\nHost: 127.0.0.1:{port}\r\n".encode() in seen[0]


def test_sighup_stops_cleanly(server_factory: ServerFactory) -> None:
    server = server_factory()
    assert server.post({"file": "hello/index.py"})[0] == 200
    server.send_signal(signal.SIGHUP)
    start = time.monotonic()
    assert server.wait(10) == 0
    assert time.monotonic() - start < 10
