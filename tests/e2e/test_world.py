"""The process environment user code runs in, as root and as --user nobody."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from conftest import Server, ServerFactory


@pytest.fixture(scope="module", params=["root", "nobody"])
def server(request: pytest.FixtureRequest, module_factory: ServerFactory) -> Server:
    args = ["--workers", "1"]
    if request.param == "nobody":
        args += ["--user", "nobody"]
    srv = module_factory(args)
    srv.as_user = request.param  # type: ignore[attr-defined]
    return srv


def world(server: Server) -> dict:
    status, _, body = server.call("world")
    assert status == 200, body
    return body


def test_cwd_is_function_folder(server: Server) -> None:
    body = world(server)
    assert os.path.realpath(body["cwd"]) == os.path.realpath(server.fn("world"))


def test_cwd_follows_path_per_request(server: Server) -> None:
    # A second function folder in the same worker gets its own cwd.
    world(server)
    status, _, body = server.post_json({"path": str(server.code_dir), "file": "world/index.py"})
    assert status == 200, body
    assert os.path.realpath(body["cwd"]) in (os.path.realpath(server.code_dir),
                                             os.path.realpath(server.fn("world")))


def test_stdin_is_dev_null(server: Server) -> None:
    body = world(server)
    assert body["stdin_target"] == "/dev/null"
    assert body["stdin_is_devnull"] is True
    assert body["stdin_read"] == ""
    assert body["sys_stdin_read"] in ("", None)


def test_home_and_tmpdir_writable(server: Server) -> None:
    body = world(server)
    assert body["home"], "HOME not set"
    assert body["home_writable"] == "ok", body
    assert body["tmpdir"], "TMPDIR not set"
    assert body["tmpdir_writable"] == "ok", body
    assert body["mkstemp"] == "ok", body


def test_runs_as_requested_user(server: Server) -> None:
    """Started as root, each worker runs as a uid of its own, never root nor the
    zygote's --user (docs/operating.md, the sandbox); started unprivileged, as the
    invoking user."""
    body = world(server)
    if os.getuid() != 0:
        assert body["uid"] == os.getuid()
        return
    assert body["uid"] == body["euid"], body
    assert body["uid"] not in (0, pwd.getpwnam("nobody").pw_uid), body


def test_function_folder_on_sys_path(server: Server) -> None:
    body = world(server)
    assert any(os.path.realpath(p) == os.path.realpath(server.fn("world"))
               for p in body["sys_path"] if p), body["sys_path"]


def test_serving_does_not_write_into_code_dir(server: Server) -> None:
    def snapshot() -> set[str]:
        out = set()
        for dirpath, dirnames, filenames in os.walk(server.code_dir):
            for n in dirnames + filenames:
                out.add(str(Path(dirpath, n).relative_to(server.code_dir)))
        return out
    before = snapshot()
    for name in ("world", "hello", "echo", "counter"):
        status, _, _ = server.call_raw(name)
        assert status == 200
    after = snapshot()
    assert after == before, f"new files in the code dir: {sorted(after - before)}"
