"""The function_types package on its own: the objects, and its build backend."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PACKAGE_ROOT))
sys.path.insert(0, str(PACKAGE_ROOT / "_backend"))

import function_types_build  # noqa: E402
from function_types import Request, Response, Result  # noqa: E402


def test_request_defaults_and_values() -> None:
    req = Request()
    assert (req.payload, req.env, req.headers) == ({}, {}, {})
    req = Request(payload=None, env={"K": "v"}, headers={"h": "1"})
    assert req.payload is None
    assert req.env == {"K": "v"} and req.headers == {"h": "1"}
    assert "payload=None" in repr(req)


def test_request_defaults_are_not_shared() -> None:
    a, b = Request(), Request()
    a.env["K"] = "v"
    a.payload["x"] = 1
    assert b.env == {} and b.payload == {}


def test_objects_have_slots_only() -> None:
    with pytest.raises(AttributeError):
        Request().extra = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        Response().extra = 1  # type: ignore[attr-defined]


def test_json_and_send_results() -> None:
    res = Response()
    assert res.last is None
    result = res.json({"a": 1}, status=201, headers={"x-h": "v"})
    assert isinstance(result, Result)
    assert (result.body, result.status, result.headers, result.is_json) == (
        {"a": 1}, 201, {"x-h": "v"}, True)
    assert result.content_type == "application/json"
    assert res.last is result
    text = res.send("hi")
    assert (text.body, text.status, text.headers, text.is_json) == ("hi", 200, {}, False)
    assert text.content_type == "text/plain; charset=utf-8"
    assert res.last is text
    assert res.send(b"\x00\x01").body == b"\x00\x01"


def test_headers_are_copied() -> None:
    headers = {"a": "1"}
    result = Response().json({}, headers=headers)
    headers["b"] = "2"
    assert result.headers == {"a": "1"}


@pytest.mark.parametrize("status", [199, 600, -1, 0])
def test_status_out_of_range(status: int) -> None:
    with pytest.raises(ValueError, match="status must be from 200 to 599"):
        Response().json({}, status=status)


@pytest.mark.parametrize("status", [True, 200.0, "200", None])
def test_status_must_be_an_int(status: object) -> None:
    with pytest.raises(TypeError, match="status must be an int"):
        Response().send("x", status=status)  # type: ignore[arg-type]


def test_send_takes_text_only() -> None:
    with pytest.raises(TypeError, match="res.send\\(\\) takes str or bytes, not dict"):
        Response().send({"a": 1})  # type: ignore[arg-type]


def test_headers_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="headers must be a dict, not list"):
        Response().json({}, headers=[("a", "b")])  # type: ignore[arg-type]


def test_calling_main_directly() -> None:
    def main(req: Request, res: Response) -> Result:
        return res.json({"echo": req.payload, "who": req.env.get("WHO")})

    result = main(Request(payload=[1], env={"WHO": "me"}), Response())
    assert result.status == 200 and result.body == {"echo": [1], "who": "me"}


# ---- the build backend

def _record_ok(whl: zipfile.ZipFile) -> None:
    record_name = next(n for n in whl.namelist() if n.endswith(".dist-info/RECORD"))
    rows = list(csv.reader(io.StringIO(whl.read(record_name).decode())))
    listed = {row[0] for row in rows}
    assert listed == set(whl.namelist())
    for path, digest, size in rows:
        if path == record_name:
            assert (digest, size) == ("", "")
            continue
        data = whl.read(path)
        want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert digest == f"sha256={want}" and int(size) == len(data), path


def test_wheel(tmp_path: Path) -> None:
    name = function_types_build.build_wheel(str(tmp_path))
    assert name == "function_types-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(tmp_path / name) as whl:
        names = set(whl.namelist())
        assert {"function_types/__init__.py", "function_types/py.typed"} <= names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        metadata = whl.read("function_types-1.0.0.dist-info/METADATA").decode()
        assert "Name: function-types\n" in metadata and "Version: 1.0.0\n" in metadata
        assert "Tag: py3-none-any" in whl.read("function_types-1.0.0.dist-info/WHEEL").decode()
        _record_ok(whl)


def test_wheel_is_reproducible(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = function_types_build.build_wheel(str(tmp_path / "a"))
    second = function_types_build.build_wheel(str(tmp_path / "b"))
    assert (tmp_path / "a" / first).read_bytes() == (tmp_path / "b" / second).read_bytes()


def test_sdist_builds_again(tmp_path: Path) -> None:
    name = function_types_build.build_sdist(str(tmp_path))
    with tarfile.open(tmp_path / name) as tar:
        names = set(tar.getnames())
    base = "function_types-1.0.0"
    assert {f"{base}/pyproject.toml", f"{base}/PKG-INFO", f"{base}/function_types/py.typed",
            f"{base}/_backend/function_types_build.py"} <= names


def test_editable_wheel_points_here(tmp_path: Path) -> None:
    name = function_types_build.build_editable(str(tmp_path))
    with zipfile.ZipFile(tmp_path / name) as whl:
        pth = [n for n in whl.namelist() if n.endswith(".pth")]
        assert len(pth) == 1
        assert whl.read(pth[0]).decode().strip() == str(PACKAGE_ROOT)
        _record_ok(whl)


def test_metadata_without_tomllib() -> None:
    text = (PACKAGE_ROOT / "pyproject.toml").read_text()
    fields = function_types_build._project_fallback(text)
    assert fields["name"] == "function-types" and fields["version"] == "1.0.0"


# ---------------------------------------------------------------- open-runtimes v5

from function_types import (  # noqa: E402
    Context,
    ContextRequest,
    ContextResponse,
    LegacyRequest,
    LegacyResponse,
)


@pytest.mark.parametrize("url, host, port, path, query_string, canonical", [
    ("http://localhost:3000/", "localhost", 3000, "/", "", "http://localhost:3000/"),
    ("https://www.example.com:3001/a/b?c=d&e=f#frag", "www.example.com", 3001, "/a/b",
     "c=d&e=f", "https://www.example.com:3001/a/b?c=d&e=f"),
    ("http://example.com:80/", "example.com", 80, "/", "", "http://example.com/"),
    ("https://example.com/", "example.com", 443, "/", "", "https://example.com/"),
    ("https://example.com:80/", "example.com", 80, "/", "", "https://example.com:80/"),
    ("http://[::1]:8080/x", "[::1]", 8080, "/x", "", "http://[::1]:8080/x"),
    ("http://host:notaport/", "host", 80, "/", "", "http://host/"),
    ("http://h/a%20b?x=%26", "h", 80, "/a b", "x=&", "http://h/a b?x=&"),
    ("http://h/?q=a+b%2Bc", "h", 80, "/", "q=a+b+c", "http://h/?q=a+b+c"),
])
def test_context_request_url_parts(url: str, host: str, port: int, path: str,
                                   query_string: str, canonical: str) -> None:
    req = ContextRequest(url=url)
    assert (req.host, req.port, req.path, req.query_string) == (host, port, path, query_string)
    assert req.url == canonical
    assert req.scheme == url.split("://")[0]


def test_context_request_query_rules() -> None:
    req = ContextRequest(url="http://h/?a=b&c==d&e=f=g=&h&i=j&&k&=v")
    assert req.query == {"a": "b", "c": "=d", "e": "f=g=", "h": "", "i": "j", "k": ""}
    req = ContextRequest(url="http://h/?x=%26y%3D1&n%20m=caf%C3%A9")
    assert req.query == {"x": "&y=1", "n m": "café"}


def test_context_request_bodies() -> None:
    req = ContextRequest(method="POST", body='{"k": "OK 👋"}',
                         headers={"content-type": "ApPlIcAtIoN/JSON; charset=utf-8"})
    assert req.body_binary == '{"k": "OK 👋"}'.encode()
    assert req.body_text == req.body_raw == '{"k": "OK 👋"}'
    assert req.body_json == {"k": "OK 👋"} == req.body == req.payload
    assert ContextRequest(headers={"content-type": "application/json"}).body == {}
    assert ContextRequest(body="x", headers={"content-type": "text/json"}).body == "x"
    assert ContextRequest(body="x").body == "x"  # no content type: text
    with pytest.raises(ValueError):
        _ = ContextRequest(body="{bad", headers={"content-type": "application/json"}).body
    with pytest.raises(UnicodeDecodeError):
        _ = ContextRequest(body=b"\xff").body_text
    assert isinstance(ContextRequest().env, dict)


def test_context_response_outputs() -> None:
    res = ContextResponse()
    assert res.text("hé") == {"body": "hé".encode(), "statusCode": 200, "headers": {}}
    out = res.json({"a": [1, 2]}, 201, {"x": "1"})
    assert out["body"] == b'{"a":[1,2]}' and out["statusCode"] == 201
    assert out["headers"] == {"x": "1", "content-type": "application/json"}
    assert res.binary(bytearray([0, 10, 255]))["body"] == bytes([0, 10, 255])
    assert res.empty() == {"body": b"", "statusCode": 204, "headers": {}}
    assert res.redirect("https://x/")["headers"] == {"location": "https://x/"}
    assert res.redirect("https://x/")["statusCode"] == 301
    assert res.send("50")["body"] == "50"
    assert isinstance(res.send(b"\x00")["body"], bytes)
    assert type(out).__name__ == "ContextOutput" and res.last is not None
    with pytest.raises(TypeError):
        res.binary("text")  # type: ignore[arg-type]


def test_context_response_does_not_share_headers() -> None:
    res = ContextResponse()
    shared: dict[str, str] = {}
    res.json({}, 200, shared)
    res.redirect("/x", 302, shared)
    assert shared == {}  # the caller's dict is never changed
    assert "content-type" not in res.redirect("/y")["headers"]


def test_context_log_lines() -> None:
    context = Context()
    context.log("engine:", "open-runtimes")
    context.log(42, 4.2, True, {"objectKey": "v"}, ["arrayValue"], (1, 2))
    context.error("A" * 9000)
    assert context.logs[0] == "engine: open-runtimes"
    assert context.logs[1] == '42 4.2 True {"objectKey":"v"} ["arrayValue"] [1,2]'
    assert context.errors[0] == (
        "A" * 8000 + "... Log truncated due to size limit (8000 characters)")
    sent: list[tuple[int, str]] = []
    sinking = Context(sink=lambda stream, line: sent.append((stream, line)))
    sinking.log("a")
    sinking.error("b")
    assert sent == [(0, "a"), (1, "b")] and sinking.logs == [] and sinking.errors == []


def test_legacy_v2_objects() -> None:
    req = LegacyRequest({"K": "v"}, "payload", {"h": "1"})
    assert req.env is req.variables and req.payload == "payload"
    assert LegacyRequest().payload == "" and LegacyRequest().env == {}
    res = LegacyResponse()
    assert (res.response, res.status, res.is_set) == (None, 200, False)
    res.send("text", 201)
    assert (res.response, res.status, res.is_set) == ("text", 201, True)
    res.json({"a": 1})
    assert (res.response, res.status) == ({"a": 1}, 200)
