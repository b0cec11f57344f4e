"""INTERNAL_RUNTIME_KEY is never visible to user code."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from conftest import (KEY, Server, ServerFactory, descendants, free_port, make_code_dir,
                      run_pyrt)

SECRET = "pyrt-e2e-key-" + uuid.uuid4().hex


@pytest.fixture(scope="module", params=["root", "nobody"])
def server(request: pytest.FixtureRequest, module_factory: ServerFactory) -> Server:
    args = ["--workers", "1"]
    if request.param == "nobody":
        args += ["--user", "nobody"]
    return module_factory(args, key=SECRET)


def probe(server: Server) -> dict:
    others = [pid for pid, _ in descendants(server.pid)]
    status, _, body = server.call("secrets", {"rkey": SECRET[::-1], "master": server.pid,
                                              "others": others}, key=SECRET)
    assert status == 200, body
    return body


def test_key_works(server: Server) -> None:
    status, _, _ = server.call("hello", key=SECRET)
    assert status == 200
    status, _, _ = server.call("hello", key=KEY)
    assert status == 401


def test_not_in_os_environ(server: Server) -> None:
    body = probe(server)
    assert body["os_environ_values"] is False
    assert body["os_environ_names"] is False
    assert body["environ_var_set"] is False


def test_not_in_own_proc_files(server: Server) -> None:
    body = probe(server)
    assert not body["self_environ"].startswith("LEAK"), body
    assert not body["self_cmdline"].startswith("LEAK"), body


def test_not_readable_from_server_processes(server: Server) -> None:
    # The master may be invisible (worker in its own pid namespace): then it is not
    # readable either. Whatever is visible must not give the key away.
    body = probe(server)
    leaks = {pid: v for pid, v in body["ancestors"].items()
             if any(str(x).startswith("LEAK") for x in v.values())}
    assert not leaks, f"key readable from the server's processes: {leaks}"


def test_master_environ_overwritten(server: Server) -> None:
    # Even to root outside the sandbox, the master's environment block no longer has it.
    data = Path(f"/proc/{server.pid}/environ").read_bytes()
    assert SECRET.encode() not in data


@pytest.mark.parametrize("key", [None, ""])
def test_start_without_key_fails(key: str | None) -> None:
    code = make_code_dir(with_functions=False, files={
        "index.py": "def main(req, res):\n    return res.send('x')\n"})
    try:
        result = run_pyrt(["serve", "--code-dir", str(code), "--host", "127.0.0.1",
                           "--port", str(free_port())], key=key)
    finally:
        shutil.rmtree(code.parent, ignore_errors=True)
    assert result.returncode != 0
    assert "INTERNAL_RUNTIME_KEY" in result.stderr + result.stdout, result.stderr
