"""The open-runtimes executor's own requests, replayed byte for byte.

`executor_v5` and `executor_v2` send what `executeV5`/`executeV2` in open-runtimes/executor
(src/Executor/Runner/Docker.php) send through PHP's curl, and read the answer the way
they do: the log id from `x-open-runtimes-log-id` (urldecoded), the two log files read and
deleted, repeated headers kept as lists, `x-open-runtimes-*` headers dropped; for v2,
`json_decode(body)->response/stdout/stderr`.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import pytest

from conftest import HOST, RawConn, RawResponse
from contract_helpers import (MIB, NATIVE_MARKER, SECRET, TIMED_OUT, V2_KEY, ContractFactory,
                              ContractServer, contract_module_factory, md5, v5_env)

__all__ = ["contract_module_factory"]  # fixture used below

CUSTOM = "executor-variable"
# curl sends `Expect: 100-continue` for large bodies and waits up to 1 s for the 100.
EXPECT_THRESHOLD = MIB
EXPECT_WAIT = 1.0


@pytest.fixture(scope="module")
def v5(contract_module_factory: ContractFactory) -> ContractServer:
    return contract_module_factory(
        "v5_actions", env=v5_env(OPEN_RUNTIMES_ENTRYPOINT="handler.py", CUSTOM_ENV_VAR=CUSTOM),
        args=["--workers", "2"])


@pytest.fixture(scope="module")
def v2(contract_module_factory: ContractFactory) -> ContractServer:
    return contract_module_factory(
        "v2_actions", contract="v2", logs=False,
        env={"INTERNAL_RUNTIME_KEY": V2_KEY, "INTERNAL_RUNTIME_ENTRYPOINT": "main.py"},
        args=["--workers", "2", "--max-timeout", "2"])


# --------------------------------------------------------------------------- the executor

def curl_exchange(port: int, head_lines: list[str], data: bytes, timeout: float,
                  head_only: bool = False) -> RawResponse:
    """Send a request like curl does (Expect: 100-continue for large bodies) and read
    the final answer."""
    expect = len(data) > EXPECT_THRESHOLD
    lines = list(head_lines)
    if expect:
        lines.append("Expect: 100-continue")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with RawConn(port, timeout=timeout) as conn:
        conn.send(head)
        if expect:
            conn.sock.settimeout(EXPECT_WAIT)
            try:
                interim: Optional[RawResponse] = conn.read_response(skip_interim=False,
                                                                    head_only=True)
            except socket.timeout:
                interim = None
            conn.sock.settimeout(timeout)
            if interim is not None and interim.status != 100:
                # A final answer instead of 100 Continue (e.g. 413): curl takes it.
                length = interim.header("content-length")
                if length is not None:
                    interim.body = conn._read_exact(int(length))
                else:
                    interim.body, _ = conn.read_until_close(timeout)
                return interim
        conn.send(data)
        return conn.read_response(head_only=head_only)


@dataclass
class Execution:
    status: int
    body: bytes
    logs: str
    errors: str
    headers: dict[str, Union[str, list[str]]]
    raw: RawResponse
    seconds: float
    files_existed: dict[str, bool] = field(default_factory=dict)


def executor_v5(server: ContractServer, method: str = "POST", path: str = "/",
                payload: Optional[Union[str, bytes]] = "",
                headers: Optional[dict[str, str]] = None, timeout: float = 15.0,
                logging: bool = True, secret: str = SECRET) -> Execution:
    if not path.startswith("/"):
        path = "/" + path
    hdrs = dict(headers or {})
    hdrs["x-open-runtimes-logging"] = "enabled" if logging else "disabled"
    hdrs["Authorization"] = "Basic " + base64.b64encode(f"opr:{secret}".encode()).decode()
    hdrs["x-open-runtimes-secret"] = secret
    hdrs["x-open-runtimes-timeout"] = str(max(int(timeout), 1))
    lines = [f"{method or 'GET'} {path} HTTP/1.1", f"Host: {HOST}:{server.port}", "Accept: */*"]
    lines += [f"{k}: {v}" for k, v in hdrs.items()]
    data = b""
    if payload is not None and payload not in ("", "0", b"", b"0"):
        data = payload.encode() if isinstance(payload, str) else payload
        lines.append(f"Content-Length: {len(data)}")
        if not any(k.lower() == "content-type" for k in hdrs):
            lines.append("Content-Type: application/x-www-form-urlencoded")
    start = time.monotonic()
    raw = curl_exchange(server.port, lines, data, timeout + 5,
                        head_only=method.upper() == "HEAD")
    seconds = time.monotonic() - start

    response_headers: dict[str, Union[str, list[str]]] = {}
    for name, value in raw.headers:
        key, value = name.strip().lower(), value.strip()
        if key == "x-open-runtimes-log-id":
            value = urllib.parse.unquote_plus(value)
        if key in response_headers:
            prev = response_headers[key]
            response_headers[key] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            response_headers[key] = value
    file_id = response_headers.get("x-open-runtimes-log-id", "")
    if isinstance(file_id, list):
        file_id = file_id[0]
    texts = {"logs": "", "errors": ""}
    existed = {}
    if file_id not in ("", "0"):
        for kind in ("logs", "errors"):
            path_ = server.log_file_path(file_id, kind)
            existed[kind] = path_.exists()
            if existed[kind]:
                texts[kind] = path_.read_text()
                path_.unlink()
    output = {k: v for k, v in response_headers.items() if not k.startswith("x-open-runtimes-")}
    return Execution(raw.status, raw.body, texts["logs"], texts["errors"], output, raw, seconds,
                     existed)


def php_json_encode(value: Any) -> str:
    """PHP's json_encode defaults: \\uXXXX for non-ASCII and `\\/` for slashes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


@dataclass
class V2Execution:
    status: int
    raw_body: bytes
    decoded: Any
    response: Any
    stdout: str
    stderr: str
    seconds: float


def executor_v2(server: ContractServer, variables: dict[str, str], payload: str,
                timeout: float = 15.0, key: str = V2_KEY) -> V2Execution:
    # json_encode([...], JSON_FORCE_OBJECT): every PHP array an object, `headers` is {}.
    body = php_json_encode({"variables": variables or {}, "payload": payload,
                            "headers": {}}).encode()
    lines = ["POST / HTTP/1.1", "Accept: */*", "Content-Type: application/json",
             f"Content-Length: {len(body)}", f"x-internal-challenge: {key}", "host: null"]
    start = time.monotonic()
    raw = curl_exchange(server.port, lines, body, timeout)
    seconds = time.monotonic() - start
    try:
        decoded = json.loads(raw.body)
    except ValueError:
        decoded = None  # json_decode gives null: the executor records '' everywhere
    obj = decoded if isinstance(decoded, dict) else {}
    return V2Execution(raw.status, raw.body, decoded, obj.get("response", ""),
                       obj.get("stdout", ""), obj.get("stderr", ""), seconds)


# --------------------------------------------------------------------------- v5

def test_v5_get_with_query(v5: ContractServer) -> None:
    ex = executor_v5(v5, "GET", "a/b?x=1&y", headers={"x-action": "url"})
    assert ex.status == 200, ex.raw
    got = json.loads(ex.body)
    assert (got["path"], got["query"], got["query_string"]) == ("/a/b", {"x": "1", "y": ""},
                                                                 "x=1&y")
    assert ex.files_existed == {"logs": True, "errors": True}
    assert (ex.logs, ex.errors) == ("", "")
    assert not any(k.startswith("x-open-runtimes-") for k in ex.headers)
    assert ex.raw.header("x-open-runtimes-log-id")
    assert v5.log_files() == set()


def test_v5_json_payload(v5: ContractServer) -> None:
    ex = executor_v5(v5, "POST", "/", '{"a":[1,2],"b":"é"}',
                     {"x-action": "body-auto-json", "content-type": "application/json"})
    assert ex.status == 200
    assert json.loads(ex.body) == {"a": [1, 2], "b": "é"}
    assert ex.headers["content-type"] == "application/json; charset=utf-8"


def test_v5_user_code_sees_user_headers_only(v5: ContractServer) -> None:
    ex = executor_v5(v5, "POST", "/", "k=v&x=y", {"x-action": "headers", "x-user": "u"})
    assert ex.status == 200
    seen = json.loads(ex.body)
    assert seen["x-user"] == "u"
    assert seen["content-type"] == "application/x-www-form-urlencoded"
    assert seen["accept"] == "*/*"
    assert "authorization" not in seen
    assert not [k for k in seen if k.startswith("x-open-runtimes-")]


def test_v5_logs(v5: ContractServer) -> None:
    ex = executor_v5(v5, "POST", "/", "", {"x-action": "logs"})
    assert ex.status == 200
    assert "plain log\n" in ex.logs
    assert NATIVE_MARKER in ex.logs
    assert "plain error\n" in ex.errors
    assert v5.log_files() == set()


def test_v5_logging_disabled(v5: ContractServer) -> None:
    ex = executor_v5(v5, "POST", "/", "", {"x-action": "logs"}, logging=False)
    assert ex.status == 200
    assert ex.raw.header("x-open-runtimes-log-id") == ""
    assert (ex.logs, ex.errors) == ("", "")
    assert v5.log_files() == set()


def test_v5_exception(v5: ContractServer) -> None:
    ex = executor_v5(v5, "POST", "/", "", {"x-action": "raise"})
    assert (ex.status, ex.body) == (500, b"")
    assert "RuntimeError: pyrt test failure 4711" in ex.errors
    assert "about to fail" in ex.logs


def test_v5_timeout(v5: ContractServer) -> None:
    ex = executor_v5(v5, "POST", "/", "", {"x-action": "sleep", "x-seconds": "5"}, timeout=1.5)
    assert (ex.status, ex.body) == (500, b"")
    assert ex.seconds < 2.9, ex.seconds
    assert TIMED_OUT in ex.errors
    assert "sleep start" in ex.logs and "sleep end" not in ex.logs


@pytest.mark.parametrize("action", ["spin", "block"])
def test_v5_timeout_sync_code(v5: ContractServer, action: str) -> None:
    ex = executor_v5(v5, "POST", "/", "", {"x-action": action}, timeout=1)
    assert (ex.status, ex.body) == (500, b"")
    assert ex.seconds < 2.9, ex.seconds
    assert TIMED_OUT in ex.errors


def test_v5_head(v5: ContractServer) -> None:
    ex = executor_v5(v5, "HEAD", "/", "", {"x-action": "method"})
    assert (ex.status, ex.body) == (200, b"")
    assert ex.headers["x-method"] == "HEAD"


def test_v5_repeated_headers_are_lists(v5: ContractServer) -> None:
    ex = executor_v5(v5, "GET", "/", "", {"x-action": "cookies"})
    assert ex.status == 200
    assert ex.headers["set-cookie"] == ["a=1; path=/", "b=2; path=/; HttpOnly"]
    assert ex.headers["x-single"] == "one"


def test_v5_function_cannot_set_runtime_headers(v5: ContractServer) -> None:
    ex = executor_v5(v5, "GET", "/", "", {"x-action": "response-headers"})
    assert ex.status == 200
    assert ex.raw.header("x-open-runtimes-leak") is None
    assert ex.headers["x-saw-opr"] == "missing"


def test_v5_payload_zero_is_not_sent(v5: ContractServer) -> None:
    # The executor drops a payload of "0" (and ""): a POST without body or length.
    ex = executor_v5(v5, "POST", "/", "0", {"x-action": "body-text"})
    assert (ex.status, ex.body) == (200, b"")


def test_v5_variables_as_environment(v5: ContractServer) -> None:
    ex = executor_v5(v5, "GET", "/", "", {"x-action": "env"})
    assert ex.status == 200
    assert json.loads(ex.body)["custom"] == CUSTOM


def test_v5_large_body_with_expect(v5: ContractServer) -> None:
    data = os.urandom(17 * MIB)
    ex = executor_v5(v5, "PUT", "/", data, {"x-action": "md5",
                                            "content-type": "application/octet-stream"})
    assert ex.status == 200, ex.raw
    assert ex.body.decode() == md5(data)
    assert ex.headers["x-method"] == "PUT"


def test_v5_body_over_limit_with_expect(v5: ContractServer) -> None:
    data = b"z" * (23 * MIB)
    ex = executor_v5(v5, "POST", "/", data, {"x-action": "md5"})
    assert ex.status == 413
    assert executor_v5(v5, "GET", "/", "", {"x-action": "text"}).status == 200


def test_v5_wrong_secret(v5: ContractServer) -> None:
    ex = executor_v5(v5, "GET", "/", "", {"x-action": "text"}, secret="stale-secret")
    assert ex.status == 500
    assert b"Unauthorized" in ex.body
    assert v5.log_files() == set()


# --------------------------------------------------------------------------- v2

def test_v2_echo(v2: ContractServer) -> None:
    variables = {"A": "1", "URL": "https://example.test/p/q", "UNI": "é"}
    ex = executor_v2(v2, variables, "echo with / and é and \"quotes\"")
    assert ex.status == 200, ex.raw_body
    assert ex.response == {"variables": variables, "env_is_variables": True,
                           "payload": "echo with / and é and \"quotes\"", "headers": {}}
    assert (ex.stdout, ex.stderr) == ("", "")


def test_v2_empty_variables_are_an_object(v2: ContractServer) -> None:
    ex = executor_v2(v2, {}, "echo")
    assert ex.status == 200, ex.raw_body
    assert ex.response["variables"] == {}
    assert ex.response["headers"] == {}


def test_v2_status_and_stdout(v2: ContractServer) -> None:
    ex = executor_v2(v2, {}, "print")
    assert (ex.status, ex.response, ex.stdout) == (200, "printed",
                                                   "hello stdout\nsecond line\n")
    ex = executor_v2(v2, {}, "send")
    assert (ex.status, ex.response) == (201, "sent as text")
    ex = executor_v2(v2, {}, "json")
    assert ex.status == 202
    assert ex.response == {"list": [1, "two"], "slash": "a/b", "uni": "é👋"}


def test_v2_exception(v2: ContractServer) -> None:
    ex = executor_v2(v2, {}, "raise")
    assert ex.status == 500
    assert isinstance(ex.decoded, dict), ex.raw_body  # never an HTML page
    assert ex.stdout == "before the failure\n"
    assert "ValueError: v2 failure 4242" in ex.stderr


def test_v2_timeout(v2: ContractServer) -> None:
    ex = executor_v2(v2, {}, "sleep", timeout=15)
    assert ex.status == 500
    assert 1.8 <= ex.seconds < 5.0, ex.seconds
    assert isinstance(ex.decoded, dict), ex.raw_body
    assert "timed out" in ex.stderr.lower()


def test_v2_large_payload(v2: ContractServer) -> None:
    payload = "echo" + "x" * (2 * MIB)
    ex = executor_v2(v2, {"A": "1"}, payload)
    assert ex.status == 200, ex.raw_body[:300]
    assert ex.response["payload"] == payload


def test_v2_wrong_key(v2: ContractServer) -> None:
    ex = executor_v2(v2, {}, "send", key="stale-key")
    assert ex.status == 401
    assert ex.decoded == {"message": "Unauthorized", "code": 401}
