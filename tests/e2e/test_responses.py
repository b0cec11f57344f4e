"""What main returns becomes the HTTP response."""

from __future__ import annotations

import json

import pytest

from conftest import Server, ServerFactory

NO_RESPONSE = "main returned no response; return res.send(...) or res.json(...)"


@pytest.fixture(scope="module")
def server(module_factory: ServerFactory) -> Server:
    return module_factory()


def case(server: Server, case_name: str, **extra: str) -> tuple[int, dict[str, str], bytes]:
    return server.call_raw("responses", {"case": case_name, **extra})


def test_send_is_text_plain(server: Server) -> None:
    status, headers, body = case(server, "send")
    assert status == 200
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body == b"plain text"
    assert headers["content-length"] == str(len(body))


def test_send_unicode_is_utf8(server: Server) -> None:
    status, headers, body = case(server, "send_unicode")
    assert status == 200
    assert body == "h\u00e9llo \u2713".encode()


def test_json(server: Server) -> None:
    status, headers, body = case(server, "json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"a": 1, "b": [True, None, "x"]}


def test_send_status_and_headers(server: Server) -> None:
    status, headers, body = case(server, "send_status_headers")
    assert status == 201
    assert headers.get("x-custom") == "custom-value"
    assert body == b"created"
    assert headers["content-type"] == "text/plain; charset=utf-8"


def test_json_status_and_headers(server: Server) -> None:
    status, headers, body = case(server, "json_status_headers")
    assert status == 418
    assert headers.get("x-other") == "v2"
    assert json.loads(body) == {"teapot": True}


def test_content_type_override(server: Server) -> None:
    status, headers, body = case(server, "content_type_override")
    assert status == 200
    assert headers["content-type"] == "text/html"
    assert body == b"<b>hi</b>"


def test_json_content_type_override_any_case(server: Server) -> None:
    status, headers, body = case(server, "json_content_type_override")
    assert status == 200
    assert headers["content-type"] == "application/vnd.test+json"
    assert json.loads(body) == {"x": 1}


@pytest.mark.parametrize("name,value", [
    ("Content-Length", "5"),
    ("content-length", "1"),
    ("Transfer-Encoding", "chunked"),
    ("Connection", "close"),
    ("X-Injected", "a\r\nX-Evil: 1"),
    ("X-Injected", "a\nX-Evil: 1"),
    ("X-Injected", "a\rb"),
    ("X-Bad\r\nX-Evil", "1"),
])
def test_forbidden_headers_are_500(server: Server, name: str, value: str) -> None:
    status, headers, body = case(server, "forbidden_header", name=name, value=value)
    assert status == 500, body
    assert "x-evil" not in headers
    parsed = json.loads(body)
    assert parsed["code"] == 500 and parsed["message"], parsed


def test_return_dict_is_json(server: Server) -> None:
    status, headers, body = case(server, "return_dict")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"returned": "dict", "n": 2}


def test_return_list_is_json(server: Server) -> None:
    status, headers, body = case(server, "return_list")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == [1, "two", None]


def test_return_str_is_text(server: Server) -> None:
    status, headers, body = case(server, "return_str")
    assert status == 200
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body == b"returned string"


def test_return_bytes_is_octet_stream(server: Server) -> None:
    status, headers, body = case(server, "return_bytes")
    assert status == 200
    assert headers["content-type"] == "application/octet-stream"
    assert body == b"\x00\x01binary\xff"


def test_none_after_send_uses_last_call(server: Server) -> None:
    status, headers, body = case(server, "none_after_send")
    assert status == 202
    assert body == b"last"


def test_none_after_json(server: Server) -> None:
    status, headers, body = case(server, "none_after_json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"via": "json"}


def test_none_without_response(server: Server) -> None:
    status, _, body = case(server, "none")
    assert status == 500
    assert json.loads(body) == {"message": NO_RESPONSE, "code": 500}


@pytest.mark.parametrize("name", ["unserialisable_json", "unserialisable_return"])
def test_unserialisable_is_500(server: Server, name: str) -> None:
    status, _, body = case(server, name)
    assert status == 500, body
    parsed = json.loads(body)
    assert parsed["code"] == 500 and parsed["message"], parsed


def test_every_response_has_request_id(server: Server) -> None:
    for name in ("send", "json", "none", "forbidden_header"):
        extra = {"name": "Connection", "value": "x"} if name == "forbidden_header" else {}
        _, headers, _ = case(server, name, **extra)
        assert headers.get("x-request-id"), name


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
