"""The execution request body: validation, defaults, and the file's location."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from conftest import Server, ServerFactory, make_code_dir, write_file


@pytest.fixture(scope="module")
def server(module_factory: ServerFactory) -> Server:
    return module_factory()


def echo(server: Server, **fields: Any) -> dict:
    return {"path": str(server.fn("echo")), "file": "index.py", **fields}


def test_empty_body(server: Server) -> None:
    status, _, body = server.post_json(b"")
    assert status == 500
    assert body == {"message": "no data received", "code": 500}


@pytest.mark.parametrize("raw", [b"not json", b"{", b'{"a": }', b"\xff\xfe", b"{} {}"])
def test_not_json_is_400(server: Server, raw: bytes) -> None:
    status, _, body = server.post_json(raw)
    assert status == 400, body
    assert isinstance(body, dict) and body.get("code") == 400, body
    assert isinstance(body.get("message"), str) and body["message"], body


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"str"', b"123", b"null", b"true"])
def test_json_not_an_object_is_400(server: Server, raw: bytes) -> None:
    status, _, body = server.post_json(raw)
    assert status == 400, body
    assert body.get("code") == 400 and body.get("message"), body


@pytest.mark.parametrize("timeout", ["abc", -1, 0, "5", True, [1], {"s": 1}, -0.5])
def test_bad_timeout_is_400(server: Server, timeout: Any) -> None:
    status, _, body = server.post_json(echo(server, timeout=timeout))
    assert status == 400, f"timeout {timeout!r}: {status} {body}"
    assert body.get("code") == 400 and body.get("message"), body


@pytest.mark.parametrize("timeout", [1.5, 10, 100000, 1e3])
def test_good_timeout_accepted(server: Server, timeout: float) -> None:
    status, _, body = server.post_json(echo(server, timeout=timeout, payload="t"))
    assert status == 200, body
    assert body["payload"] == "t"


@pytest.mark.parametrize("payload", [
    "Hello World!",
    "",
    "h\u00e9llo \u2713 \U0001F600 a\u0000b",
    '{"looks": "like json"}',
    0,
    42,
    -7,
    12345678901234567890123,
    1.5,
    True,
    False,
    None,
    [],
    [1, "two", [3], {"four": 4}, None],
    {},
    {"nested": {"deep": [1, 2, {"x": None}]}, "n": 1.25},
])
def test_payload_passes_through_unchanged(server: Server, payload: Any) -> None:
    status, _, body = server.post_json(echo(server, payload=payload))
    assert status == 200, body
    assert body["payload"] == payload
    assert type(body["payload"]) is type(payload)
    assert body["payload_type"] == type(payload).__name__


def test_payload_default_is_empty_dict(server: Server) -> None:
    status, _, body = server.post_json(echo(server))
    assert status == 200, body
    assert body["payload"] == {} and body["payload_type"] == "dict"
    assert body["env"] == {} and body["headers"] == {}


def test_env_and_headers(server: Server) -> None:
    env = {"A": "1", "EMPTY": "", "NULL": None, "UNI": "\u00e9"}
    headers = {"test": "test1", "x-other": "v"}
    status, _, body = server.post_json(echo(server, env=env, headers=headers))
    assert status == 200, body
    assert body["env"] == env
    assert body["env_none"] == ["NULL"]
    assert body["headers"] == headers


def test_huge_timeout_number_is_capped(server: Server) -> None:
    raw = (b'{"path": "%s", "payload": "big", "timeout": 1e400}' % str(server.fn("echo")).encode())
    status, _, body = server.post_json(raw)
    assert status == 200, body
    raw = (b'{"path": "%s", "payload": "big", "timeout": 123456789012345678901234567890}'
           % str(server.fn("echo")).encode())
    status, _, body = server.post_json(raw)
    assert status == 200, body


def test_deeply_nested_payload(server: Server) -> None:
    # Valid JSON that CPython's json refuses (RecursionError): a clean 400, and the
    # server and worker go on.
    depth = 100000
    raw = (b'{"path": "%s", "payload": ' % str(server.fn("echo")).encode()
           + b"[" * depth + b"]" * depth + b"}")
    status, _, body = server.post_json(raw)
    assert status == 400, body
    assert body["code"] == 400 and body["message"], body
    status, _, body = server.post_json(echo(server, payload="after"))
    assert status == 200 and body["payload"] == "after"


def test_duplicate_key_last_wins(server: Server) -> None:
    raw = (b'{"path": "%s", "file": "index.py", "payload": "first", "payload": "last"}'
           % str(server.fn("echo")).encode())
    status, _, body = server.post_json(raw)
    assert status == 200, body
    assert body["payload"] == "last"


def test_unknown_fields_ignored(server: Server) -> None:
    status, _, body = server.post_json(echo(server, payload=1, somethingElse={"a": 1}))
    assert status == 200, body
    assert body["payload"] == 1


# ---------------------------------------------------------------- defaults

def test_no_path_no_file_runs_entry_point(server: Server) -> None:
    status, _, body = server.post({})
    assert status == 200, body
    assert body == b"root-index"


def test_file_only_is_relative_to_code_dir(server: Server) -> None:
    status, _, body = server.post({"file": "hello/index.py"})
    assert status == 200, body
    assert body == b"hello"


def test_path_only_uses_entry_point_name(server: Server) -> None:
    status, _, body = server.post({"path": str(server.fn("hello"))})
    assert status == 200, body
    assert body == b"hello"


@pytest.mark.parametrize("files,expected", [
    ({"index.py": "def main(req, res):\n    return res.send('index')\n"}, b"index"),
    ({"index.py": "def main(req, res):\n    return res.send('index')\n",
      "main.py": "def main(req, res):\n    return res.send('main')\n"}, b"main"),
])
def test_default_entry_point(server_factory: ServerFactory, files: dict[str, str],
                             expected: bytes) -> None:
    code = make_code_dir(files, with_functions=False)
    server_factory.bases.append(code.parent)
    srv = server_factory(code_dir=code)
    status, _, body = srv.post({})
    assert status == 200, body
    assert body == expected


def test_entrypoint_from_env(server_factory: ServerFactory) -> None:
    files = {"app.py": "def main(req, res):\n    return res.send('app')\n",
             "index.py": "def main(req, res):\n    return res.send('index')\n"}
    code = make_code_dir(files, with_functions=False)
    server_factory.bases.append(code.parent)
    srv = server_factory(code_dir=code, env={"ENTRYPOINT_NAME": "app.py"})
    status, _, body = srv.post({})
    assert status == 200, body
    assert body == b"app"


# ---------------------------------------------------------------- file location

def assert_500_naming(status: int, body: Any, name: str) -> None:
    assert status == 500, body
    assert body.get("code") == 500, body
    assert name in body.get("message", ""), body
    assert "escaped" not in str(body)


def test_missing_file(server: Server) -> None:
    status, _, body = server.post_json({"path": str(server.fn("hello")), "file": "nope.py"})
    assert_500_naming(status, body, "nope.py")


def test_missing_path(server: Server) -> None:
    status, _, body = server.post_json({"path": str(server.code_dir / "no_such_dir"),
                                        "file": "index.py"})
    assert status == 500, body
    assert "no_such_dir" in body.get("message", ""), body


def test_dotdot_outside_code_dir(server: Server) -> None:
    status, _, body = server.post_json({"path": str(server.code_dir), "file": "../outside.py"})
    assert_500_naming(status, body, "outside.py")


def test_absolute_path_outside_code_dir(server: Server) -> None:
    status, _, body = server.post_json({"path": str(server.code_dir.parent),
                                        "file": "outside.py"})
    assert_500_naming(status, body, "outside.py")


def test_symlinked_file_outside_code_dir(server: Server) -> None:
    link = server.code_dir / "evil_link.py"
    if not link.exists():
        os.symlink(server.code_dir.parent / "outside.py", link)
    status, _, body = server.post_json({"path": str(server.code_dir), "file": "evil_link.py"})
    assert_500_naming(status, body, "evil_link.py")


def test_symlinked_dir_outside_code_dir(server: Server) -> None:
    link = server.code_dir / "evil_dir"
    if not link.exists():
        os.symlink(server.code_dir.parent / "outside_dir", link)
    status, _, body = server.post_json({"path": str(link), "file": "index.py"})
    assert status == 500, body
    assert "index.py" in body.get("message", "") or "evil_dir" in body.get("message", ""), body
    assert "escaped" not in str(body)


def test_symlink_to_etc(server: Server) -> None:
    link = server.code_dir / "etc"
    if not link.exists():
        os.symlink("/etc", link)
    status, _, body = server.post_json({"path": str(link), "file": "hostname"})
    assert status == 500, body
    msg = body.get("message", "")
    assert "hostname" in msg, body
    assert "Traceback" not in msg, f"the file outside was imported: {msg}"


def test_symlink_inside_code_dir_is_allowed(server: Server) -> None:
    link = server.code_dir / "alias.py"
    if not link.exists():
        os.symlink(server.fn("hello") / "index.py", link)
    status, _, body = server.post({"path": str(server.code_dir), "file": "alias.py"})
    assert status == 200, body
    assert body == b"hello"


def test_directory_as_file(server: Server) -> None:
    status, _, body = server.post_json({"path": str(server.code_dir), "file": "hello"})
    assert status == 500, body
    assert "hello" in body.get("message", ""), body


def test_code_dir_prefix_sibling_is_outside(server: Server) -> None:
    # /tmp/x/code-evil must not count as inside /tmp/x/code.
    sibling = Path(str(server.code_dir) + "-evil")
    write_file(sibling / "index.py", "def main(req, res):\n    return res.send('escaped')\n")
    try:
        status, _, body = server.post_json({"path": str(sibling), "file": "index.py"})
        assert_500_naming(status, body, "index.py")
    finally:
        (sibling / "index.py").unlink()
        sibling.rmdir()
