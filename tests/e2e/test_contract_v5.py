"""`--contract v5`: CONTRACT.md section 5, "v5" (open-runtimes' executeV5).

Every behaviour of open-runtimes' conformance suite has an equivalent here, written
against the contract (the function is tests/e2e/functions/v5_actions/handler.py), plus
what pyrt does better: sync code is stopped at its deadline, the secret and the
executor's Authorization header never reach user code, log ids cannot escape the logs
dir, repeated response headers are possible.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import select
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

import pytest

from conftest import (FUNCTIONS, HOST, PYRT, _OWN_CHILDREN, RawConn, alive, descendants,
                      free_port, proc_cmdline, run_bounded, wait_until)
from contract_helpers import (BAD_TIMEOUT, MIB, NATIVE_MARKER, RETURN_MISSING, SECRET,
                              START_LINE, TIMED_OUT, TRUNCATED, UNAUTHORIZED, Answer,
                              ContractFactory, ContractServer, basic_auth, contract_env,
                              contract_module_factory, contract_factory, execute, md5,
                              request, v5_env)
from toolchain import DEMO_VALUE, Wheelhouse, expect_ok, find_links_env, run_tool

__all__ = ["contract_module_factory", "contract_factory"]  # fixtures used below

FORCED_HEADERS = '{"x-forced":"value","X-FORCED-UPPER":"Mixed","x-open-runtimes-forced":314}'
CUSTOM = "custom-value-e2e"
TIMINGS = "local_download=0.125\nremote_download=1.5\nextract=0.25\n"
LOG_ID_RE = re.compile(r"^[A-Za-z0-9._-]{20}$")
TEXT = "Grüße aus pyrt 👋"
UTF8_TEXT = "text/plain; charset=utf-8"


def squash(value: Optional[str]) -> str:
    """A header value without whitespace (for content types)."""
    return re.sub(r"\s+", "", value or "")


# --------------------------------------------------------------------------- servers

@pytest.fixture(scope="module")
def telemetry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("telemetry") / "timings.txt"
    path.write_text(TIMINGS)
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    return path


@pytest.fixture(scope="module")
def server(contract_module_factory: ContractFactory, telemetry: Path) -> ContractServer:
    """Like open-runtimes' main test server: a secret, enforced headers, a custom
    variable, the entry point named by OPEN_RUNTIMES_ENTRYPOINT."""
    return contract_module_factory(
        "v5_actions",
        env=v5_env(OPEN_RUNTIMES_ENTRYPOINT="handler.py", OPEN_RUNTIMES_HEADERS=FORCED_HEADERS,
                   CUSTOM_ENV_VAR=CUSTOM),
        args=["--workers", "2", "--default-timeout", "10", "--telemetry-file", str(telemetry)])


@pytest.fixture(scope="module")
def dev(contract_module_factory: ContractFactory, tmp_path_factory: pytest.TempPathFactory
        ) -> ContractServer:
    """Like open-runtimes' secondary server: empty secret (no check), development mode
    (log id `dev`), empty OPEN_RUNTIMES_HEADERS, no telemetry file."""
    missing = tmp_path_factory.mktemp("no-telemetry") / "timings.txt"
    return contract_module_factory(
        "v5_actions", secret=None,
        env=v5_env("", OPEN_RUNTIMES_ENTRYPOINT="handler.py", OPEN_RUNTIMES_ENV="development",
                   OPEN_RUNTIMES_HEADERS=""),
        args=["--workers", "1", "--telemetry-file", str(missing)])


@pytest.fixture(scope="module")
def sync_server(contract_module_factory: ContractFactory) -> ContractServer:
    return contract_module_factory("v5_sync", env=v5_env(),
                                   args=["--workers", "1", "--default-timeout", "2"])


@pytest.fixture(scope="module")
def legacy(contract_module_factory: ContractFactory) -> ContractServer:
    return contract_module_factory("v5_legacy", env=v5_env(CUSTOM_ENV_VAR=CUSTOM),
                                   args=["--workers", "1"])


def clear_dev_logs(dev: ContractServer) -> None:
    for kind in ("logs", "errors"):
        dev.log_file_path("dev", kind).unlink(missing_ok=True)


# --------------------------------------------------------------------------- start-up

def test_start_line_on_stdout_once(server: ContractServer) -> None:
    assert server.execute("text").status == 200
    assert server.stdout_text().count(START_LINE) == 1, server.stdout_text()
    assert START_LINE not in server.log_text()


def test_health(server: ContractServer) -> None:
    answer = server.request("GET", "/__opr/health")
    assert (answer.status, answer.body) == (200, b"OK")


def test_timings_from_the_telemetry_file(server: ContractServer) -> None:
    answer = server.request("GET", "/__opr/timings")
    assert answer.status == 200
    assert squash(answer.header("content-type")) == "text/plain;charset=utf-8"
    assert answer.text == TIMINGS
    pairs = dict(line.split("=", 1) for line in answer.text.splitlines())
    assert {k: float(v) for k, v in pairs.items()} == {
        "local_download": 0.125, "remote_download": 1.5, "extract": 0.25}


def test_timings_empty_without_the_file(dev: ContractServer) -> None:
    answer = dev.request("GET", "/__opr/timings")
    assert (answer.status, answer.body) == (200, b"")
    assert squash(answer.header("content-type")) == "text/plain;charset=utf-8"


def test_seed_paths_run_the_function(server: ContractServer) -> None:
    # In v5 only /__opr/health and /__opr/timings are the runtime's own.
    for method, path in (("GET", "/__health"), ("GET", "/__opr/other"), ("POST", "/")):
        answer = server.execute("text", method=method, path=path)
        assert (answer.status, answer.text) == (200, TEXT), (method, path, answer)


def test_empty_secret_logs_a_warning(dev: ContractServer) -> None:
    assert "OPEN_RUNTIMES_SECRET" in dev.log_text(), dev.log_tail()


def _serve_args(code: Path, *extra: str) -> list[str]:
    return ["serve", *extra, "--code-dir", str(code), "--host", HOST,
            "--port", str(free_port())]


def test_v5_without_secret_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("def main(context):\n    return context.res.text('x')\n")
    rc, out, err = run_bounded(_serve_args(tmp_path, "--contract", "v5"), contract_env(), "/",
                               10.0)
    assert rc != 0
    assert "OPEN_RUNTIMES_SECRET" in out + err, (out, err)


def test_both_secrets_without_flag_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("def main(context):\n    return context.res.text('x')\n")
    env = contract_env({"OPEN_RUNTIMES_SECRET": SECRET, "INTERNAL_RUNTIME_KEY": "other-key"})
    rc, out, err = run_bounded(_serve_args(tmp_path), env, "/", 10.0)
    assert rc != 0
    assert "--contract" in out + err, (out, err)


def test_v5_chosen_from_the_environment(contract_factory: ContractFactory) -> None:
    # OPEN_RUNTIMES_SECRET set, INTERNAL_RUNTIME_KEY not, no flag: v5.
    s = contract_factory("v5_entries", contract=None, env=v5_env(), args=["--workers", "1"])
    answer = s.execute()
    assert (answer.status, answer.text) == (200, "main")
    assert answer.log_id


def test_pyrt_contract_variable(contract_factory: ContractFactory) -> None:
    s = contract_factory("v5_entries", contract=None, args=["--workers", "1"],
                         env=v5_env(INTERNAL_RUNTIME_KEY="other-key", PYRT_CONTRACT="v5"))
    answer = s.execute()
    assert (answer.status, answer.text) == (200, "main")


@pytest.mark.parametrize("env,args,expected", [
    ({}, [], "main"),
    ({"INTERNAL_RUNTIME_ENTRYPOINT": "d.py"}, [], "d"),
    ({"OPEN_RUNTIMES_ENTRYPOINT": "c.py", "INTERNAL_RUNTIME_ENTRYPOINT": "d.py"}, [], "c"),
    ({"ENTRYPOINT_NAME": "b.py", "OPEN_RUNTIMES_ENTRYPOINT": "c.py"}, [], "b"),
    ({"ENTRYPOINT_NAME": "b.py", "OPEN_RUNTIMES_ENTRYPOINT": "c.py"}, ["--entrypoint", "a.py"],
     "a"),
])
def test_entry_point_precedence(contract_factory: ContractFactory, env: dict[str, str],
                                args: list[str], expected: str) -> None:
    s = contract_factory("v5_entries", env=v5_env(**env), args=["--workers", "1", *args])
    answer = s.execute()
    assert (answer.status, answer.text) == (200, expected)


def test_library_from_requirements(contract_factory: ContractFactory, wheelhouse: Wheelhouse,
                                   tmp_path: Path) -> None:
    # open-runtimes' `library` action, offline: a dependency installed by `pyrt build`
    # (whose validation accepts a one-argument main) is importable in v5.
    code = tmp_path / "fn"
    shutil.copytree(FUNCTIONS / "v5_library", code)
    (code / "requirements.txt").write_text("pyrtdemo==1.0\n")
    os.chmod(tmp_path, 0o755)
    expect_ok(run_tool(["build", str(code)], env=find_links_env(wheelhouse.dir), timeout=120))
    s = contract_factory(code_dir=code, env=v5_env(), args=["--workers", "1"])
    answer = s.execute(body="5", headers={"content-type": "text/plain"})
    assert answer.status == 200, answer
    assert json.loads(answer.body) == {"demo": DEMO_VALUE, "body": "5"}


# --------------------------------------------------------------------------- secret

@pytest.mark.parametrize("secret", ["wrongSecret", "", SECRET[:-1], SECRET + "x",
                                    SECRET.upper()])
def test_wrong_secret(server: ContractServer, secret: str) -> None:
    answer = server.execute("text", method="GET", secret=secret, log_id=f"wrong{len(secret)}")
    assert answer.status == 500
    assert answer.text == UNAUTHORIZED
    # The function did not run: no log files for that id.
    assert not any(n.startswith(f"wrong{len(secret)}_") for n in server.log_files())


def test_no_secret_header(server: ContractServer) -> None:
    answer = server.execute("text", method="GET", secret=None)
    assert (answer.status, answer.text) == (500, UNAUTHORIZED)


def test_secret_checked_before_the_body(server: ContractServer) -> None:
    # A wrong secret is answered without waiting for the declared body.
    head = (f"POST / HTTP/1.1\r\nHost: {HOST}\r\nx-action: text\r\n"
            f"x-open-runtimes-secret: wrong\r\nContent-Length: 100000\r\n\r\n").encode()
    with RawConn(server.port, timeout=5.0) as conn:
        conn.send(head + b"x" * 10)
        resp = conn.read_response()
    assert resp.status == 500
    assert resp.body.decode() == UNAUTHORIZED


def test_empty_server_secret_accepts_anything(dev: ContractServer) -> None:
    for secret in (None, "", "wrong-secret", SECRET):
        answer = dev.execute("text", method="GET", secret=secret, logging="disabled")
        assert (answer.status, answer.text) == (200, TEXT), secret


def test_secret_hidden_from_user_code(server: ContractServer) -> None:
    answer = server.execute("secrets", headers={"x-rkey": SECRET[::-1],
                                                "x-master": str(server.pid)})
    assert answer.status == 200, answer
    found = json.loads(answer.body)
    assert found["names"] == []
    assert found["in_values"] is False
    assert not found["self_environ"].startswith("LEAK"), found
    assert not found["self_cmdline"].startswith("LEAK"), found
    assert not found["master_environ"].startswith("LEAK"), found
    assert found["custom"] == CUSTOM


def test_secret_not_in_any_server_process_environ(server: ContractServer) -> None:
    assert server.execute("text").status == 200
    pids = [server.pid] + [p for p, _ in descendants(server.pid)]
    leaks = []
    for pid in pids:
        try:
            data = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if SECRET.encode() in data:
            leaks.append(f"{pid} ({proc_cmdline(pid)})")
    assert not leaks, f"OPEN_RUNTIMES_SECRET in the environ of {leaks}"


def test_executor_authorization_hidden_other_authorization_kept(
        server: ContractServer) -> None:
    answer = server.execute("headers")
    seen = json.loads(answer.body)
    assert "authorization" not in seen
    assert "x-open-runtimes-secret" not in seen
    answer = server.execute("headers", headers=[("Authorization", "Bearer user-token")])
    assert json.loads(answer.body)["authorization"] == "Bearer user-token"
    # Several Authorization lines: the executor's is removed, the others are joined.
    answer = server.execute("headers", headers=[("Authorization", "Bearer one"),
                                                ("Authorization", "Bearer two")])
    assert json.loads(answer.body)["authorization"] == "Bearer one, Bearer two"
    # The executor's value for another secret is not the executor's: it reaches the code.
    other = basic_auth("not-the-secret")
    answer = server.execute("headers", auth=False, headers=[("Authorization", other)])
    assert json.loads(answer.body)["authorization"] == other


# --------------------------------------------------------------------------- responses

def test_text_response(server: ContractServer) -> None:
    answer = server.execute("text")
    assert answer.status == 200
    assert answer.text == TEXT
    assert squash(answer.header("content-type")) == "text/plain;charset=utf-8"
    assert answer.header("x-request-id")
    assert answer.log_id


def test_json_response_is_compact(server: ContractServer) -> None:
    answer = server.execute("json")
    assert answer.status == 200
    assert squash(answer.header("content-type")) == "application/json;charset=utf-8"
    assert json.loads(answer.body) == {"ok": True, "items": [1, 2], "nested": {"a": "b c"}}
    assert answer.text == '{"ok":true,"items":[1,2],"nested":{"a":"b c"}}'
    body = json.dumps({"name": "pyrt", "version": 3.5, "published": True,
                       "nested": [{"object": 1}]}, indent=2)
    answer = server.execute("body-json", body=body,
                            headers={"content-type": "application/json"})
    assert answer.status == 200
    assert b" " not in answer.body and b"\n" not in answer.body, answer
    assert json.loads(answer.body) == json.loads(body)


@pytest.mark.parametrize("action,expected", [
    ("charset", "text/plain;charset=iso-8859-1"),
    ("upper-type", "text/html;charset=utf-8"),
    ("multipart", "multipart/form-data;boundary=pyrt"),
])
def test_content_type(server: ContractServer, action: str, expected: str) -> None:
    answer = server.execute(action)
    assert answer.status == 200
    assert squash(answer.header("content-type")) == expected
    assert len(answer.all("content-type")) == 1


def test_redirect(server: ContractServer) -> None:
    answer = server.execute("redirect")
    assert (answer.status, answer.body) == (301, b"")
    assert answer.header("location") == "https://example.org/next"
    answer = server.execute("redirect-302")
    assert (answer.status, answer.body) == (302, b"")
    assert answer.header("location") == "/elsewhere"
    assert answer.header("x-why") == "moved"


def test_empty_response(server: ContractServer) -> None:
    answer = server.execute("empty")
    assert (answer.status, answer.body) == (204, b"")


def test_no_return(server: ContractServer) -> None:
    answer = server.execute("no-return")
    assert (answer.status, answer.body) == (500, b"")
    assert RETURN_MISSING in (server.errors(answer) or ""), server.errors(answer)
    assert "context.res.empty()" in (server.errors(answer) or "")


def test_last_returned_response_wins(server: ContractServer) -> None:
    answer = server.execute("twice")
    assert (answer.status, answer.text) == (200, "second, returned")


def test_status_code(server: ContractServer) -> None:
    answer = server.execute("status")
    assert (answer.status, answer.text) == (404, "nothing here")


def test_response_headers(server: ContractServer) -> None:
    cookie = "first=one; second=two; third=a=b; fourth=c:d; fifth=5"
    answer = server.execute("response-headers", headers={
        "x-open-runtimes-probe": "must not reach the code", "cookie": cookie})
    assert (answer.status, answer.text) == (200, "OK")
    names = [k for k, _ in answer.headers]
    assert "x-mixed-case" in names
    assert answer.header("x-mixed-case") == "v1"
    assert answer.header("x-saw-opr") == "missing"
    assert answer.header("x-echo-cookie") == cookie
    assert answer.header("x-open-runtimes-leak") is None
    assert [k for k in names if k.startswith("x-open-runtimes-")] == ["x-open-runtimes-log-id"]


def test_list_header_values_are_repeated_lines(server: ContractServer) -> None:
    answer = server.execute("cookies")
    assert answer.status == 200
    assert answer.all("set-cookie") == ["a=1; path=/", "b=2; path=/; HttpOnly"]
    assert answer.all("x-single") == ["one"]


def test_binary_responses(server: ContractServer) -> None:
    answer = server.execute("binary-bytearray", body="")
    assert (answer.status, answer.body) == (200, bytes([0, 7, 255]))
    answer = server.execute("binary-bytes", body="")
    assert (answer.status, answer.body) == (200, bytes([1, 128, 255, 0]))


def test_deprecated_send(server: ContractServer) -> None:
    answer = server.execute("send-raw", body="Hello")
    assert (answer.status, answer.text) == (200, "Hello")
    for ctype in ("application/json", "application/unknown"):
        answer = server.execute("send-raw", body='{"hello":"world"}',
                                headers={"content-type": ctype})
        assert (answer.status, answer.text) == (200, '{"hello":"world"}'), ctype
    answer = server.execute("send-str", body="Hello")
    assert (answer.status, answer.text) == (200, "50")
    answer = server.execute("send-bytes", body="Hello")
    assert answer.status == 200
    assert (answer.header("content-type") or "").startswith("image/png")
    assert md5(answer.body) == md5(bytes(range(256)))


# --------------------------------------------------------------------------- requests

@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_request_method(server: ContractServer, method: str) -> None:
    answer = server.execute("method", method=method)
    assert (answer.status, answer.text) == (200, method)


def test_head_runs_the_function(server: ContractServer) -> None:
    answer = server.execute("method", method="HEAD")
    assert answer.status == 200
    assert answer.header("x-method") == "HEAD"
    assert answer.body == b""


def url_of(server: ContractServer, path: str, headers: dict[str, str]) -> dict:
    answer = server.execute("url", method="GET", path=path, headers=headers)
    assert answer.status == 200, answer
    return json.loads(answer.body)


def test_request_url_defaults(server: ContractServer) -> None:
    got = url_of(server, "/", {})
    assert got == {"url": f"http://127.0.0.1:{server.port}/", "port": server.port,
                   "path": "/", "query": {}, "query_string": "", "scheme": "http",
                   "host": "127.0.0.1"}


def test_request_url_forwarded(server: ContractServer) -> None:
    got = url_of(server, "/x/y.z?p=1&q=two",
                 {"x-forwarded-proto": "https", "host": "api.example.test:8443"})
    assert got == {"url": "https://api.example.test:8443/x/y.z?p=1&q=two", "port": 8443,
                   "path": "/x/y.z", "query": {"p": "1", "q": "two"},
                   "query_string": "p=1&q=two", "scheme": "https",
                   "host": "api.example.test"}


@pytest.mark.parametrize("host,proto,port,url", [
    ("site.example:80", None, 80, "http://site.example/"),
    ("site.example", None, 80, "http://site.example/"),
    ("secure.example", "https", 443, "https://secure.example/"),
    ("secure.example:443", "https", 443, "https://secure.example/"),
    ("secure.example:80", "https", 80, "https://secure.example:80/"),
    ("plain.example:443", "http", 443, "http://plain.example:443/"),
])
def test_request_url_default_ports(server: ContractServer, host: str, proto: Optional[str],
                                   port: int, url: str) -> None:
    headers = {"host": host}
    if proto:
        headers["x-forwarded-proto"] = proto
    got = url_of(server, "/", headers)
    assert (got["host"], got["port"], got["url"]) == (host.split(":")[0], port, url)


def test_query_parsing(server: ContractServer) -> None:
    qs = "a=1&b==2&c=x=y=&flag&d=4&&=skipped&e"
    got = url_of(server, "/q?" + qs, {})
    assert got["query_string"] == qs
    assert got["query"] == {"a": "1", "b": "=2", "c": "x=y=", "flag": "", "d": "4", "e": ""}
    assert got["path"] == "/q"


def test_request_headers(server: ContractServer) -> None:
    answer = server.execute("headers", headers=[
        ("x-first", "first-value"), ("X-UpPeR-CaSe", "Value"),
        ("x-open-runtimes-probe", "hidden"), ("X-Open-Runtimes-Other", "hidden too"),
        ("x-multi", "1"), ("x-multi", "2")])
    assert answer.status == 200
    assert squash(answer.header("content-type")) == "application/json;charset=utf-8"
    seen = json.loads(answer.body)
    assert seen["x-action"] == "headers"
    assert seen["x-first"] == "first-value"
    assert seen["x-upper-case"] == "Value"
    assert seen["x-multi"] == "1, 2"
    assert all(k == k.lower() for k in seen), seen
    assert not [k for k in seen if k.startswith("x-open-runtimes-")
                and k != "x-open-runtimes-forced"], seen


def test_enforced_headers(server: ContractServer) -> None:
    forced = {"x-forced": "value", "x-forced-upper": "Mixed", "x-open-runtimes-forced": "314"}
    for sent in ([], [("x-forced", "IGNORED"), ("x-forced-upper", "IGNORED"),
                      ("x-open-runtimes-forced", "IGNORED")],
                 [("X-FORCED-UPPER", "IGNORED")]):
        answer = server.execute("headers", headers=sent)
        assert answer.status == 200
        seen = json.loads(answer.body)
        assert {k: seen.get(k) for k in forced} == forced, (sent, seen)


def test_empty_enforced_headers(dev: ContractServer) -> None:
    answer = dev.execute("headers", logging="disabled", headers={"x-mine": "1"})
    assert answer.status == 200
    seen = json.loads(answer.body)
    assert seen["x-mine"] == "1"
    assert "x-forced" not in seen


def test_body_text(server: ContractServer) -> None:
    body = "Hello 👋 pyrt"
    for action in ("body-text", "body-auto-text", "body-raw"):
        answer = server.execute(action, body=body, headers={"content-type": "text/plain"})
        assert (answer.status, answer.text) == (200, body), action
    answer = server.execute("body-text", body="")
    assert (answer.status, answer.text) == (200, "")


@pytest.mark.parametrize("ctype", ["application/xhtml+xml", "not-application/json",
                                   "application/octet-stream", "audio/mpeg", "font/ttf",
                                   "image/png", "video/mp4", "text/json"])
def test_body_auto_is_text_unless_json(server: ContractServer, ctype: str) -> None:
    body = "Hello 👋 pyrt"
    answer = server.execute("body-auto-text", body=body, headers={"content-type": ctype})
    assert (answer.status, answer.text) == (200, body)


def test_body_json(server: ContractServer) -> None:
    body = '{"key1":"OK 👋","key2":true,"key3":3}'
    expected = {"key1": "OK 👋", "key2": True, "key3": 3}
    for action, ctype in (("body-json", "application/json"),
                          ("body-auto-json", "application/json"),
                          ("body-auto-json", "ApPlIcAtIoN/JSON"),
                          ("body-auto-json", "application/json; charset=utf-8"),
                          ("body-json", "text/plain")):
        answer = server.execute(action, body=body, headers={"content-type": ctype})
        assert answer.status == 200, (action, ctype, answer)
        assert json.loads(answer.body) == expected, (action, ctype)
    answer = server.execute("body-auto-json", body="",
                            headers={"content-type": "application/json"})
    assert (answer.status, answer.text) == (200, "{}")
    answer = server.execute("body-json", body="{}", headers={"content-type": "application/json"})
    assert (answer.status, answer.text) == (200, "{}")


def test_body_types(server: ContractServer) -> None:
    answer = server.execute("body-type", body='{"a":1}',
                            headers={"content-type": "application/json"})
    assert json.loads(answer.body) == {"type": "dict", "binary": "bytes"}
    answer = server.execute("body-type", body='{"a":1}', headers={"content-type": "text/plain"})
    assert json.loads(answer.body) == {"type": "str", "binary": "bytes"}


def test_invalid_json_body(server: ContractServer) -> None:
    answer = server.execute("body-json", body='{"invalidJson:true}',
                            headers={"content-type": "application/json"})
    assert (answer.status, answer.body) == (500, b"")
    assert "json" in (server.errors(answer) or "").lower(), server.errors(answer)
    answer = server.execute("body-json", body="", headers={"content-type": "application/json"})
    assert (answer.status, answer.body) == (500, b"")


def test_body_binary(server: ContractServer) -> None:
    for body, ctype in ((bytes.fromhex("0123456789abcdef"), "application/octet-stream"),
                        (bytes.fromhex("0123456789abcdef"), "text/plain"),
                        (bytes([0, 10, 255]), "text/plain"),
                        (bytes(range(256)) * 4, "image/png")):
        answer = server.execute("body-binary", body=body, headers={"content-type": ctype})
        assert (answer.status, answer.body) == (200, body), ctype


def test_env_vars(server: ContractServer) -> None:
    answer = server.execute("env")
    assert answer.status == 200
    assert squash(answer.header("content-type")) == "application/json;charset=utf-8"
    assert json.loads(answer.body) == {"custom": CUSTOM, "missing": None,
                                       "entrypoint": "handler.py"}


# --------------------------------------------------------------------------- errors

def test_exception(server: ContractServer) -> None:
    answer = server.execute("no-such-action")
    assert (answer.status, answer.body) == (500, b"")
    assert server.logs(answer) == ""
    errors = server.errors(answer) or ""
    assert "unknown action: 'no-such-action'" in errors, errors
    assert "handler.py" in errors


def test_error_with_logs(server: ContractServer) -> None:
    answer = server.execute("raise")
    assert (answer.status, answer.body) == (500, b"")
    assert "about to fail" in (server.logs(answer) or "")
    errors = server.errors(answer) or ""
    assert "Traceback" in errors
    assert "RuntimeError: pyrt test failure 4711" in errors
    # The worker goes on.
    assert server.execute("text").status == 200


@pytest.fixture(scope="module", params=["missing", "syntax", "nomain", "importerror"])
def broken(request: pytest.FixtureRequest, contract_module_factory: ContractFactory
           ) -> tuple[str, ContractServer]:
    function, entry = {"missing": ("v5_nomain", "absent.py"), "syntax": ("v5_syntax", "main.py"),
                       "nomain": ("v5_nomain", "main.py"),
                       "importerror": ("v5_importerror", "main.py")}[request.param]
    return request.param, contract_module_factory(
        function, env=v5_env(OPEN_RUNTIMES_ENTRYPOINT=entry), args=["--workers", "1"],
        accept_503=True)


def test_broken_entry_point_is_503(broken: tuple[str, ContractServer]) -> None:
    kind, s = broken
    expected = {"missing": "absent.py", "syntax": "Syntax error in",
                "nomain": "Did you forget to export a 'main' function?",
                "importerror": "Module not found"}[kind]
    for _ in range(2):  # the server stays up and answers the same way
        answer = s.execute("text")
        assert (answer.status, answer.body) == (503, b""), answer
        errors = s.errors(answer) or ""
        assert expected in errors, errors
    if kind == "syntax":
        assert "main.py:2" in errors, errors
    if kind == "importerror":
        assert "pyrt_e2e_no_such_module" in errors, errors
    assert s.request("GET", "/__opr/health").status in (200, 503)


# --------------------------------------------------------------------------- timeouts

@pytest.mark.parametrize("value", ["abcd", "0", "-1", "1.5", "1e3", "00", "+5", "5s", "0x10"])
def test_bad_timeout_header(server: ContractServer, value: str) -> None:
    answer = server.execute("text", timeout_header=value)
    assert (answer.status, answer.text) == (500, BAD_TIMEOUT)


def test_huge_timeout_header_is_valid(server: ContractServer) -> None:
    # Digits only and > 0: valid however long (no overflow into 0 or a negative value).
    for value in ("99999999999999999999", "1" * 40, "007"):
        answer = server.execute("text", timeout_header=value)
        assert (answer.status, answer.text) == (200, TEXT), value


def test_timeout_async(server: ContractServer) -> None:
    answer = server.execute("sleep", timeout_header="1")
    assert (answer.status, answer.body) == (500, b"")
    assert 0.9 <= answer.seconds < 2.9, answer.seconds
    assert TIMED_OUT in (server.errors(answer) or "")
    logs = server.logs(answer) or ""
    assert "sleep start" in logs and "sleep end" not in logs, logs


def test_within_timeout(server: ContractServer) -> None:
    answer = server.execute("sleep", timeout_header="5", headers={"x-seconds": "0.3"})
    assert (answer.status, answer.text) == (200, "slept")
    logs = server.logs(answer) or ""
    assert "sleep start" in logs and "sleep end" in logs


@pytest.mark.parametrize("action", ["spin", "block"])
def test_timeout_stops_blocking_code_in_async_main(server: ContractServer, action: str) -> None:
    answer = server.execute(action, timeout_header="1")
    assert (answer.status, answer.body) == (500, b"")
    assert 0.9 <= answer.seconds < 2.9, answer.seconds
    assert TIMED_OUT in (server.errors(answer) or "")
    assert f"{action} start" in (server.logs(answer) or "")
    assert server.execute("text").status == 200


def test_sync_main(sync_server: ContractServer) -> None:
    answer = sync_server.execute("hello")
    assert (answer.status, answer.text) == (200, "sync hello")


def test_sync_default_timeout(sync_server: ContractServer) -> None:
    answer = sync_server.execute("spin")
    assert (answer.status, answer.body) == (500, b"")
    assert 1.8 <= answer.seconds < 5.0, answer.seconds
    assert TIMED_OUT in (sync_server.errors(answer) or "")
    assert sync_server.execute("hello").status == 200


def test_sync_sleep_stopped(sync_server: ContractServer) -> None:
    answer = sync_server.execute("block", timeout_header="1")
    assert (answer.status, answer.body) == (500, b"")
    assert 0.9 <= answer.seconds < 2.9, answer.seconds
    assert TIMED_OUT in (sync_server.errors(answer) or "")
    assert sync_server.execute("hello").status == 200


def test_timeout_stops_child_processes(sync_server: ContractServer) -> None:
    answer = sync_server.execute("child", timeout_header="1")
    assert (answer.status, answer.body) == (500, b"")
    m = re.search(r"child (\d+)", sync_server.logs(answer) or "")
    assert m, sync_server.logs(answer)
    child = int(m.group(1))
    assert wait_until(lambda: not alive(child), 3.0), f"child {child} still alive"
    assert sync_server.execute("hello").status == 200


# --------------------------------------------------------------------------- logs

def test_logs(server: ContractServer) -> None:
    answer = server.execute("logs")
    assert (answer.status, answer.body) == (200, b"")
    log_id = answer.log_id or ""
    assert LOG_ID_RE.match(log_id), log_id
    logs = server.logs(answer)
    errors = server.errors(answer)
    assert logs is not None and errors is not None
    lines = logs.splitlines()
    for expected in ("native print line", "plain log", "a+b+c", "42", "4.2", "True",
                     '{"k":"v","n":[1,2]}', '["x",1]', '["t",2]', "A" * 8000 + TRUNCATED):
        assert expected in lines, (expected, logs[:2000])
    assert "A" * 8001 not in logs
    assert lines.count(NATIVE_MARKER) == 1
    assert lines.index(NATIVE_MARKER) < lines.index("native print line")
    assert logs.endswith("\n")
    error_lines = errors.splitlines()
    assert "plain error" in error_lines
    assert "B" * 8000 + TRUNCATED in error_lines
    assert "B" * 8001 not in errors
    assert "plain error" not in logs and "plain log" not in errors
    assert errors.endswith("\n")


def test_log_ids_unique(server: ContractServer) -> None:
    ids = [server.execute("text").log_id for _ in range(5)]
    assert all(i and LOG_ID_RE.match(i) for i in ids), ids
    assert len(set(ids)) == 5, ids


def test_log_ids_unique_in_parallel(server: ContractServer) -> None:
    ids: list[Optional[str]] = []
    lock = threading.Lock()

    def run() -> None:
        for _ in range(10):
            log_id = server.execute("text", logging="enabled").log_id
            with lock:
                ids.append(log_id)
    threads = [threading.Thread(target=run, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(ids) == 40
    assert all(i and LOG_ID_RE.match(i) for i in ids), ids
    assert len(set(ids)) == 40


def test_same_log_id_appends(server: ContractServer) -> None:
    for _ in range(2):
        assert server.execute("spread", log_id="appended").status == 200
    assert server.logs("appended") == "first: second\n" * 2
    assert server.errors("appended") == "first: second\n" * 2


def test_both_files_for_every_execution(server: ContractServer) -> None:
    answer = server.execute("text", log_id="quiet-execution")
    assert answer.log_id == "quiet-execution"
    assert (server.logs(answer), server.errors(answer)) == ("", "")


def test_logging_disabled(server: ContractServer) -> None:
    before = server.log_files()
    answer = server.execute("logs", logging="disabled", log_id="noLogs")
    assert answer.status == 200
    assert answer.all("x-open-runtimes-log-id") == [""]
    assert server.log_files() == before


def test_logging_enabled_and_custom_id(server: ContractServer) -> None:
    answer = server.execute("logs", logging="enabled")
    assert answer.log_id
    assert "plain log" in (server.logs(answer) or "")
    assert "plain error" in (server.errors(answer) or "")
    answer = server.execute("logs", log_id="customLogs")
    assert answer.log_id == "customLogs"
    assert "plain log" in (server.logs("customLogs") or "")
    assert "plain error" in (server.errors("customLogs") or "")
    longest = "L" * 128
    answer = server.execute("text", log_id=longest)
    assert (answer.status, answer.log_id) == (200, longest)
    assert server.logs(longest) == ""


def test_spread_log_arguments(server: ContractServer) -> None:
    answer = server.execute("spread", body="")
    assert (answer.status, answer.text) == (200, "OK")
    assert server.logs(answer) == "first: second\n"
    assert server.errors(answer) == "first: second\n"


def test_native_output(server: ContractServer) -> None:
    answer = server.execute("native")
    assert (answer.status, answer.text) == (200, "native")
    logs = server.logs(answer) or ""
    lines = logs.splitlines()
    assert lines.count(NATIVE_MARKER) == 1, logs
    for native in ("p1 to stdout", "p2 to stderr", "fd1 line", "fd2 line", "child line"):
        assert native in lines, (native, logs)
        assert lines.index(NATIVE_MARKER) < lines.index(native), logs
    assert "context line" in lines
    assert server.errors(answer) == ""


def test_concurrent_outputs_stay_apart(server: ContractServer) -> None:
    answers: dict[str, Answer] = {}

    def run(token: str) -> None:
        answers[token] = server.execute("print-loop", headers={"x-token": token})
    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in ("tokA", "tokB")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert set(answers) == {"tokA", "tokB"}
    for token, answer in answers.items():
        assert answer.status == 200
        lines = [ln for ln in (server.logs(answer) or "").splitlines() if ln != NATIVE_MARKER]
        assert lines == [token] * 5, (token, lines)


@pytest.mark.parametrize("bad", ["../x", ".", "..", "a" * 129, "a/b", "a b", "x\\y",
                                 "/abs"])
def test_hostile_log_id(server: ContractServer, bad: str) -> None:
    assert server.logs_dir is not None
    base = server.logs_dir.parent
    before_base = {p.name for p in base.iterdir()}
    before_logs = server.log_files()
    answer = server.execute("logs", log_id=bad)
    assert answer.status == 400, answer
    assert server.log_files() == before_logs
    assert {p.name for p in base.iterdir()} == before_base
    assert not Path("/x_logs.log").exists() and not Path("/abs_logs.log").exists()


def test_dev_log_id(dev: ContractServer) -> None:
    clear_dev_logs(dev)
    answer = dev.execute("logs", logging="disabled")
    assert answer.all("x-open-runtimes-log-id") == [""]
    assert dev.logs("dev") is None and dev.errors("dev") is None
    answer = dev.execute("logs", logging="enabled")
    assert answer.log_id == "dev"
    assert "plain log" in (dev.logs("dev") or "")
    assert "plain error" in (dev.errors("dev") or "")
    answer = dev.execute("logs", logging="enabled", log_id="myLog")
    assert answer.log_id == "myLog"
    assert "plain log" in (dev.logs("myLog") or "")
    clear_dev_logs(dev)


# --------------------------------------------------------------------------- main(req, res)

def test_legacy_main_in_v5(legacy: ContractServer) -> None:
    answer = legacy.execute(body="hello legacy", headers={"content-type": "text/plain"})
    assert answer.status == 200, answer
    assert (answer.header("content-type") or "").startswith("application/json")
    got = json.loads(answer.body)
    assert got == {"payload": "hello legacy", "body": "hello legacy", "custom": CUSTOM,
                   "env_has_secret": False, "os_has_secret": False, "method": "POST"}
    answer = legacy.execute(body='{"a": 1}', headers={"content-type": "application/json"})
    got = json.loads(answer.body)
    assert got["payload"] == got["body"] == {"a": 1}
    answer = legacy.execute(headers={"x-action": "send"})
    assert (answer.status, answer.text) == (200, "legacy send")
    assert answer.log_id


# --------------------------------------------------------------------------- limits

@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_large_body_accepted(server: ContractServer, method: str) -> None:
    body = os.urandom(17 * MIB)
    answer = server.execute("md5", method=method, body=body,
                            headers={"content-type": "application/zip"}, timeout=60)
    assert answer.status == 200, answer
    assert answer.text == md5(body)
    assert answer.header("x-method") == method
    assert answer.header("x-length") == str(len(body))


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_body_over_max_is_413(server: ContractServer, method: str) -> None:
    head = (f"{method} / HTTP/1.1\r\nHost: {HOST}\r\nx-action: md5\r\n"
            f"x-open-runtimes-secret: {SECRET}\r\nContent-Type: application/zip\r\n"
            f"Content-Length: {23 * MIB}\r\n\r\n").encode()
    with RawConn(server.port, timeout=5.0) as conn:
        conn.send(head + b"z" * 65536)
        resp = conn.read_response()
    assert resp.status == 413
    assert (resp.header("content-type") or "").startswith("text/plain")


def test_max_body_boundary(server: ContractServer) -> None:
    body = b"m" * (20 * MIB)
    answer = server.execute("md5", body=body, timeout=60)
    assert (answer.status, answer.text) == (200, md5(body))
    head = (f"POST / HTTP/1.1\r\nHost: {HOST}\r\nx-action: md5\r\n"
            f"x-open-runtimes-secret: {SECRET}\r\nContent-Length: {20 * MIB + 1}\r\n\r\n"
            ).encode()
    with RawConn(server.port, timeout=5.0) as conn:
        conn.send(head)
        assert conn.read_response().status == 413


def test_get_without_body(server: ContractServer) -> None:
    for headers in ({"content-length": "0"}, {}):
        answer = server.execute("text", method="GET", headers=headers)
        assert (answer.status, answer.text) == (200, TEXT), headers
    # A POST without a body nor Content-Length (the executor's payload "0" or "").
    answer = server.execute("body-text", method="POST")
    assert (answer.status, answer.text) == (200, "")


def raw_status(port: int, data: bytes) -> tuple[int, Optional[str]]:
    with RawConn(port, timeout=5.0) as conn:
        conn.send(data)
        resp = conn.read_response()
    return resp.status, resp.header("content-type")


def test_framing_errors_are_text(server: ContractServer) -> None:
    auth = f"x-open-runtimes-secret: {SECRET}\r\n"
    cases = [
        (400, f"POST / HTTP/1.1\r\nHost: h\r\n{auth}Content-Length: abc\r\n\r\n"),
        (400, f"POST / HTTP/1.1\r\nHost: h\r\n{auth}no colon here\r\n\r\n"),
        (414, "GET /" + "a" * 9000 + f" HTTP/1.1\r\nHost: h\r\n{auth}\r\n"),
        (431, "GET / HTTP/1.1\r\nHost: h\r\n" + auth
         + "".join(f"x-h{i}: v\r\n" for i in range(110)) + "\r\n"),
    ]
    for expected, data in cases:
        status, ctype = raw_status(server.port, data.encode())
        assert status == expected, data[:80]
        assert (ctype or "").startswith("text/plain"), (expected, ctype)


def test_sigterm_exits_cleanly(contract_factory: ContractFactory) -> None:
    s = contract_factory("v5_entries", env=v5_env(), args=["--workers", "1"])
    assert s.execute().status == 200
    s.send_signal(signal.SIGTERM)
    assert s.wait(10) == 0
    with pytest.raises(OSError):
        socket.create_connection((HOST, s.port), timeout=1).close()


# --------------------------------------------------------------------------- more of the same

@pytest.mark.parametrize("sent,expected", [
    (None, "text/plain;charset=utf-8"),
    ("application/json", "application/json;charset=utf-8"),
    ("Text/Plain; CHARSET=ISO-8859-1", "text/plain;charset=iso-8859-1"),
    ("Multipart/Mixed; boundary=ABC", "multipart/mixed;boundary=abc"),
    ("image/svg+xml", "image/svg+xml;charset=utf-8"),
])
def test_content_type_rules(server: ContractServer, sent: Optional[str],
                            expected: str) -> None:
    answer = server.execute("ctype", headers={} if sent is None else {"x-ctype": sent})
    assert answer.status == 200
    assert squash(answer.header("content-type")) == expected


def test_json_status_and_headers(server: ContractServer) -> None:
    answer = server.execute("json-status")
    assert (answer.status, answer.text) == (201, '{"created":true}')
    assert answer.header("x-extra") == "yes"
    assert squash(answer.header("content-type")) == "application/json;charset=utf-8"
    answer = server.execute("binary-typed")
    assert (answer.status, answer.body) == (200, b"\x89PNG")
    assert (answer.header("content-type") or "").startswith("image/png")


def test_chunked_request_body(server: ContractServer) -> None:
    body = b"chunked \xf0\x9f\x91\x8b body"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:5], body[5:])) + b"0\r\n\r\n"
    head = (f"POST / HTTP/1.1\r\nHost: {HOST}\r\nx-action: body-binary\r\n"
            f"x-open-runtimes-secret: {SECRET}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    with RawConn(server.port, timeout=10.0) as conn:
        conn.send(head + chunks)
        resp = conn.read_response()
    assert (resp.status, resp.body) == (200, body)


def test_keep_alive_and_pipelining(server: ContractServer) -> None:
    one = (f"GET / HTTP/1.1\r\nHost: {HOST}\r\nx-action: method\r\n"
           f"x-open-runtimes-secret: {SECRET}\r\n\r\n").encode()
    with RawConn(server.port, timeout=10.0) as conn:
        conn.send(one + one.replace(b"GET", b"PUT", 1))
        first, second = conn.read_response(), conn.read_response()
        conn.send(one.replace(b"GET", b"DELETE", 1))
        third = conn.read_response()
    assert [(r.status, r.body) for r in (first, second, third)] == [
        (200, b"GET"), (200, b"PUT"), (200, b"DELETE")]
    ids = {r.header("x-open-runtimes-log-id") for r in (first, second, third)}
    assert len(ids) == 3 and "" not in ids, ids


def test_http_1_0(server: ContractServer) -> None:
    data = (f"GET /old HTTP/1.0\r\nHost: {HOST}\r\nx-action: text\r\n"
            f"x-open-runtimes-secret: {SECRET}\r\n\r\n").encode()
    with RawConn(server.port, timeout=10.0) as conn:
        conn.send(data)
        resp = conn.read_response()
        closed = conn.is_closed(5.0)
    assert (resp.status, resp.body.decode()) == (200, TEXT)
    assert closed


def test_request_id_kept(server: ContractServer) -> None:
    answer = server.execute("text", headers={"x-request-id": "my-request.1"})
    assert answer.header("x-request-id") == "my-request.1"
    assert answer.log_id and answer.log_id != "my-request.1"


def test_logs_complete_before_the_answer(server: ContractServer) -> None:
    # Read at once, no waiting: the executor reads the files as soon as it has the answer.
    # Repeated, since output still in flight at the end of an execution is a race.
    incomplete = []
    for i in range(30):
        answer = server.execute("many-logs", headers={"x-count": "2000"}, log_id=f"many{i}")
        assert (answer.status, answer.text) == (200, "2000")
        lines = (server.logs(answer) or "").splitlines()
        native = sum(1 for ln in lines if ln.startswith("native "))
        context = sum(1 for ln in lines if ln.startswith("context "))
        if (native, context, lines.count(NATIVE_MARKER)) != (2000, 2000, 1):
            incomplete.append((i, native, context, lines[-1] if lines else None))
        for kind in ("logs", "errors"):
            server.log_file_path(f"many{i}", kind).unlink()
    assert not incomplete, f"(run, native lines, context lines, last line): {incomplete}"


def test_unicode_and_json_log_lines(server: ContractServer) -> None:
    answer = server.execute("unicode-log")
    assert answer.status == 200
    assert server.logs(answer) == "Grüße 👋\n"
    errors = (server.errors(answer) or "").splitlines()
    assert len(errors) == 1 and json.loads(errors[0]) == {"é": "ü"}, errors
    assert " " not in errors[0]


def test_worker_death_is_500(server: ContractServer) -> None:
    answer = server.execute("exit")
    assert (answer.status, answer.body) == (500, b""), answer
    assert server.errors(answer), "the reason belongs in the error log"
    for _ in range(3):
        assert server.execute("text").status == 200


def test_auto_v5_with_empty_secret(contract_factory: ContractFactory) -> None:
    s = contract_factory("v5_entries", contract=None, secret=None, env=v5_env(""),
                         args=["--workers", "1"])
    answer = s.execute(secret="anything")
    assert (answer.status, answer.text) == (200, "main")


def test_logs_dir_and_telemetry_from_environment(contract_factory: ContractFactory,
                                                 tmp_path: Path) -> None:
    logs = tmp_path / "env-logs"
    logs.mkdir()
    timings = tmp_path / "t.txt"
    timings.write_text("extract=9\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(logs, 0o777)
    s = contract_factory("v5_entries", logs=False, args=["--workers", "1"],
                         env=v5_env(PYRT_LOGS_DIR=str(logs), PYRT_TELEMETRY_FILE=str(timings)))
    answer = s.execute(log_id="from-env")
    assert (answer.status, answer.text) == (200, "main")
    assert sorted(p.name for p in logs.iterdir()) == ["from-env_errors.log", "from-env_logs.log"]
    assert s.request("GET", "/__opr/timings").text == "extract=9\n"


def test_start_line_only_when_ready(tmp_path: Path) -> None:
    """The moment the start line is on stdout, the port answers and a worker is ready."""
    shutil.copytree(FUNCTIONS / "v5_entries", tmp_path / "code")
    os.chmod(tmp_path, 0o755)
    port = free_port()
    cmd = [str(PYRT), "serve", "--contract", "v5", "--code-dir", str(tmp_path / "code"),
           "--host", HOST, "--port", str(port), "--workers", "1",
           "--logs-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=contract_env(v5_env()))
    _OWN_CHILDREN.add(proc.pid)
    try:
        assert proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 10
        while START_LINE.encode() not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
        assert START_LINE.encode() in seen, seen
        health = request(port, "GET", "/__opr/health", timeout=5.0)
        assert (health.status, health.body) == (200, b"OK")
        answer = execute(port, timeout=5.0)
        assert (answer.status, answer.text) == (200, "main")
        assert answer.seconds < 1.0, answer.seconds
    finally:
        kids = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait(10)
        assert wait_until(lambda: not any(alive(p, s) for p, s in kids), 3.0)
    assert rc == 0


def test_launch_with_contract_v5(contract_factory: ContractFactory, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(FUNCTIONS / "v5_entries", src)
    os.chmod(tmp_path, 0o755)
    archive = tmp_path / "code.tar.gz"
    expect_ok(run_tool(["pack", str(src), "-o", str(archive)], timeout=60))
    code = tmp_path / "code"  # launch creates it
    s = contract_factory(code_dir=code, subcommand="launch", env=v5_env(),
                         args=["--archive", str(archive), "--workers", "1"])
    answer = s.execute()
    assert (answer.status, answer.text) == (200, "main")
    assert (code / "main.py").is_file()


def test_unprivileged_user(contract_factory: ContractFactory) -> None:
    # Workers as nobody, a logs dir only root may write (like a mounted /mnt/logs): the
    # files are still written, and the secret is still out of reach.
    s = contract_factory("v5_actions", args=["--workers", "1", "--user", "nobody"],
                         env=v5_env(OPEN_RUNTIMES_ENTRYPOINT="handler.py"))
    assert s.logs_dir is not None
    os.chmod(s.logs_dir, 0o755)
    answer = s.execute("native")
    assert answer.status == 200
    assert "fd1 line" in (s.logs(answer) or "")
    answer = s.execute("secrets", headers={"x-rkey": SECRET[::-1], "x-master": str(s.pid)})
    found = json.loads(answer.body)
    assert found["names"] == [] and found["in_values"] is False
    assert not any(str(v).startswith("LEAK") for v in found.values()), found


def test_start_line_still_once(server: ContractServer) -> None:
    # After the timeouts and the worker death above replaced workers.
    assert server.stdout_text().count(START_LINE) == 1, server.stdout_text()
