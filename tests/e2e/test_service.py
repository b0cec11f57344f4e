"""Service endpoints, start-up failures and signals."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import (HOST, KEY, Parallel, Server, ServerFactory, clean_env, get,
                      make_code_dir, post, reachable_pyrt_copy, run_bounded, run_pyrt)

ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody").pw_uid


@pytest.fixture(scope="module")
def server(module_factory: ServerFactory) -> Server:
    return module_factory()


def test_health(server: Server) -> None:
    status, _, body = get(server.port, "/__health")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}


@pytest.mark.parametrize("method,path", [
    ("GET", "/"), ("PUT", "/"), ("DELETE", "/x"), ("GET", "/other"), ("PATCH", "/"),
    ("PUT", "/__health"), ("OPTIONS", "/"),
])
def test_other_methods_are_405(server: Server, method: str, path: str) -> None:
    status, _, body = post(server.port, b"", key=None, method=method, path=path)
    assert status == 405, body
    parsed = json.loads(body)
    assert parsed["code"] == 405 and isinstance(parsed["message"], str), parsed


def test_405_with_key_runs_no_python(server: Server) -> None:
    status, _, body = post(server.port, {"path": str(server.fn("hello"))}, method="PUT")
    assert status == 405
    assert b"hello" not in body


def test_port_in_use() -> None:
    code = make_code_dir()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        s.listen(1)
        port = s.getsockname()[1]
        result = run_pyrt(["serve", "--code-dir", str(code), "--host", HOST,
                           "--port", str(port), "--workers", "1"])
    shutil.rmtree(code.parent, ignore_errors=True)
    assert result.returncode != 0
    assert "Address already in use" in result.stderr + result.stdout, result.stderr


@pytest.fixture
def reachable_pyrt() -> Iterator[Path]:
    with reachable_pyrt_copy() as copy:
        yield copy


@pytest.mark.skipif(not ROOT, reason="needs root to start pyrt as another user")
def test_user_without_root_is_refused_at_start(reachable_pyrt: Path) -> None:
    code = make_code_dir()
    try:
        proc = subprocess.run(
            [str(reachable_pyrt), "serve", "--code-dir", str(code), "--host", "127.0.0.1",
             "--port", "0", "--user", "root"],
            env=clean_env(KEY), capture_output=True, text=True, timeout=30, cwd="/",
            preexec_fn=lambda: (os.setgid(NOBODY), os.setuid(NOBODY)))
        assert proc.returncode == 1, proc.stderr
        assert "--user root: switching users needs root" in proc.stderr
        rc, _, err = run_bounded(["serve", "--code-dir", str(code),
                                  "--user", "pyrt-no-such-user"], clean_env(KEY), "/", 30)
        assert rc == 1 and "--user pyrt-no-such-user: no such user" in err
    finally:
        shutil.rmtree(code.parent, ignore_errors=True)


def test_sigterm_finishes_in_flight_and_queued(server_factory: ServerFactory) -> None:
    srv = server_factory(["--workers", "1"])
    par = Parallel()
    body = {"path": str(srv.fn("sleep")), "payload": {"sleep": 2, "tag": "inflight"}}
    par.start(lambda: post(srv.port, body, timeout=15))
    time.sleep(0.3)
    queued = {"path": str(srv.fn("sleep")), "payload": {"sleep": 0.3, "tag": "queued"}}
    par.start(lambda: post(srv.port, queued, timeout=15))
    time.sleep(0.5)
    start = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, srv.port), timeout=2).close()
    rc = srv.wait(15)
    elapsed = time.monotonic() - start
    results = par.join(15)
    assert rc == 0, f"exit code {rc}"
    assert [r[0] for r in results] == [200, 200], results
    assert [json.loads(r[2])["tag"] for r in results] == ["inflight", "queued"]
    assert elapsed < 10, f"took {elapsed:.1f} s to finish two short requests"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_signal_exits_0_quickly(server_factory: ServerFactory, sig: int) -> None:
    srv = server_factory(["--workers", "2"])
    assert srv.post({"path": str(srv.fn("hello"))})[0] == 200
    start = time.monotonic()
    srv.send_signal(sig)
    rc = srv.wait(12)
    elapsed = time.monotonic() - start
    assert rc == 0, f"exit code {rc} after {signal.Signals(sig).name}"
    # Contract: within 5 s; 2x slack.
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_sighup_stops_cleanly(server_factory: ServerFactory) -> None:
    server = server_factory()
    assert server.post({"file": "hello/index.py"})[0] == 200
    server.send_signal(signal.SIGHUP)
    start = time.monotonic()
    assert server.wait(10) == 0
    assert time.monotonic() - start < 10


def test_first_execution_within_a_second_of_start(server_factory: ServerFactory) -> None:
    # The fixture already waits for health; measure start -> first 200 explicitly.
    code = make_code_dir()
    server_factory.bases.append(code.parent)
    start = time.monotonic()
    srv = server_factory(["--workers", "1"], code_dir=code)
    status, _, _ = srv.post({"path": str(srv.fn("hello"))})
    elapsed = time.monotonic() - start
    assert status == 200
    # Contract: within 1 s; 2x slack.
    assert elapsed < 2.0, f"first execution {elapsed:.2f} s after start"
