"""Importing, caching and calling the user's module."""

from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import Parallel, Server, ServerFactory, busy_descendants, write_file

NOT_FOUND = "function not found, Did you forget to name it `main`?"


@pytest.fixture(scope="module")
def server(module_factory: ServerFactory) -> Server:
    return module_factory(["--workers", "1"])


def dyn(server: Server, source: str) -> str:
    """A new function folder with index.py = source; returns its name."""
    name = "dyn_" + uuid.uuid4().hex[:8]
    write_file(server.fn(name) / "index.py", source)
    return name


def test_module_cached_counter_increments(server: Server) -> None:
    counts, pids = [], set()
    for _ in range(3):
        status, _, body = server.call("counter")
        assert status == 200, body
        counts.append(body["count"])
        pids.add(body["pid"])
    assert len(pids) == 1, "one worker expected with --workers 1"
    assert counts == [counts[0], counts[0] + 1, counts[0] + 2]


def test_reimported_when_file_changes(server: Server) -> None:
    name = dyn(server, "def main(req, res):\n    return res.send('v1')\n")
    assert server.call_raw(name)[2] == b"v1"
    assert server.call_raw(name)[2] == b"v1"
    write_file(server.fn(name) / "index.py",
               "def main(req, res):\n    return res.send('version-two')\n")
    status, _, body = server.call_raw(name)
    assert status == 200
    assert body == b"version-two"


def test_module_state_reset_on_reimport(server: Server) -> None:
    src = "n = 0\ndef main(req, res):\n    global n\n    n += 1\n    return res.json(n)\n"
    name = dyn(server, src)
    assert server.call(name)[2] == 1
    assert server.call(name)[2] == 2
    write_file(server.fn(name) / "index.py", src + "# changed\n")
    assert server.call(name)[2] == 1


@pytest.mark.parametrize("source,expect", [
    ("raise ValueError('import-time-boom')\ndef main(req, res): pass\n",
     "ValueError: import-time-boom"),
    ("def main(req, res)\n    return 1\n", "SyntaxError"),
    ("import no_such_module_pyrt_e2e\ndef main(req, res): pass\n",
     "ModuleNotFoundError"),
    ("import sys\nsys.exit(4)\n", "SystemExit"),
])
def test_import_error_is_500_with_traceback(server: Server, source: str, expect: str) -> None:
    name = dyn(server, source)
    status, _, body = server.call(name)
    assert status == 500, body
    assert body["code"] == 500
    assert expect in body["message"], body["message"]
    if expect != "SyntaxError":
        assert "Traceback" in body["message"], body["message"]
    # fixed file: served
    write_file(server.fn(name) / "index.py",
               "def main(req, res):\n    return res.send('fixed now, longer file')\n")
    status, _, raw = server.call_raw(name)
    assert status == 200, raw
    assert raw == b"fixed now, longer file"


def test_failed_import_is_not_cached(server: Server) -> None:
    marker = Path(tempfile.mkdtemp(prefix="pyrt-e2e-marker-")) / "imported-once"
    marker.parent.chmod(0o777)  # the worker runs as a uid of its own
    source = (
        "import os\n"
        f"MARKER = {str(marker)!r}\n"
        "if not os.path.exists(MARKER):\n"
        "    open(MARKER, 'w').close()\n"
        "    raise RuntimeError('first import fails')\n"
        "def main(req, res):\n"
        "    return res.send('second import works')\n"
    )
    name = dyn(server, source)
    try:
        status, _, body = server.call(name)
        assert status == 500 and "first import fails" in body["message"], body
        status, _, raw = server.call_raw(name)  # same file, not changed
        assert status == 200, raw
        assert raw == b"second import works"
    finally:
        marker.unlink(missing_ok=True)
        marker.parent.rmdir()


def test_missing_main(server: Server) -> None:
    status, _, body = server.call("nomain")
    assert status == 500
    assert body == {"message": NOT_FOUND, "code": 500}


def test_main_not_callable(server: Server) -> None:
    status, _, body = server.call("notcallable")
    assert status == 500
    assert body == {"message": NOT_FOUND, "code": 500}


def test_async_main_and_persistent_loop(server: Server) -> None:
    results = []
    for _ in range(3):
        status, _, body = server.call("async_fn")
        assert status == 200, body
        results.append(body)
    assert len({r["pid"] for r in results}) == 1
    first, second, third = results
    assert second["calls"] == first["calls"] + 1
    assert second["same_loop"] is True and third["same_loop"] is True, results
    assert second["reused_future"] == second["calls"], results
    assert third["queue"] == third["calls"]


@pytest.mark.parametrize("kind,expect", [
    ("value", "ValueError: boom-value-error"),
    ("systemexit", "SystemExit"),
    ("exit0", "SystemExit"),
    ("keyboardinterrupt", "KeyboardInterrupt"),
    ("base", "CustomBase: boom-custom-base"),
    ("nested", "RuntimeError: boom-inner"),
])
def test_exception_is_500_traceback_and_worker_survives(server: Server, kind: str,
                                                        expect: str) -> None:
    status, _, before = server.call("raises", {"kind": "none"})
    assert status == 200
    status, _, body = server.call("raises", {"kind": kind})
    assert status == 500, body
    assert body["code"] == 500
    assert "Traceback" in body["message"], body["message"]
    assert expect in body["message"], body["message"]
    status, _, after = server.call("raises", {"kind": "none"})
    assert status == 200, after
    assert after["token"] == before["token"], "the worker was replaced after an exception"


def test_traceback_names_user_file_and_line(server: Server) -> None:
    status, _, body = server.call("raises", {"kind": "nested"})
    assert status == 500
    path = os.path.realpath(server.fn("raises") / "index.py")
    source = Path(path).read_text().splitlines()
    call_line = source.index("        inner()") + 1
    raise_line = source.index("            raise RuntimeError('boom-inner')") + 1
    message = body["message"]
    # Both user frames, each with its file and line; pyrt's own frames are left out.
    assert f'File "{path}", line {call_line}, in main' in message, message
    assert f'File "{path}", line {raise_line}, in inner' in message, message
    assert "<pyrt>" not in message, message


def test_sibling_module_import(server: Server) -> None:
    status, _, body = server.call_raw("sibling")
    assert status == 200, body
    assert body == b"from-helper"


SANITIZED = bool(os.environ.get("PYRT_SANITIZER"))


@pytest.mark.parametrize("how,expect", [
    ("exit", ()),
    pytest.param("segv", ("signal 11", "SIGSEGV", "Segmentation"), marks=pytest.mark.skipif(
        SANITIZED, reason="ASan catches SIGSEGV itself: the worker exits with ASan's status, "
        "not signal 11")),
])
def test_worker_death_is_500_and_server_recovers(server: Server, how: str,
                                                 expect: tuple[str, ...]) -> None:
    status, headers, body = server.call("crash", {"how": how})
    assert status == 500, body
    assert body["code"] == 500 and body["message"], body
    if expect:
        assert any(e in body["message"] for e in expect), body["message"]
    access = server.access_lines(headers.get("x-request-id", "?"))
    assert [m["outcome"] for m in access] == ["crash"], access
    status, _, after = server.call("crash", {"how": "none"})
    assert status == 200, after


def test_worker_killed_from_outside_is_500(server: Server) -> None:
    # Like a kill for memory: SIGKILL the busy worker while it runs.
    par = Parallel()
    par.start(lambda: server.call("hang", {"how": "spin"}, timeout=30))
    time.sleep(0.5)
    busy = busy_descendants(server.pid)
    assert busy, "no busy worker process found among the server's descendants"
    for pid in busy:
        os.kill(pid, signal.SIGKILL)
    status, headers, body = par.join(10)[0]
    assert status == 500, body
    assert any(e in body["message"] for e in ("signal 9", "SIGKILL", "Killed")), body
    access = server.access_lines(headers.get("x-request-id", "?"))
    assert [m["outcome"] for m in access] == ["crash"], access
    status, _, _ = server.call("hello")
    assert status == 200
