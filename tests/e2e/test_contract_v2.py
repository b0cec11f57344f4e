"""`--contract v2`: CONTRACT.md section 5, "v2" (the executor's executeV2, functions
created before 2023). The function is tests/e2e/functions/v2_actions/main.py; it
dispatches on the payload string.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest

from conftest import descendants
from contract_helpers import (V2_KEY, Answer, ContractFactory, ContractServer,
                              contract_factory, contract_module_factory, request)

__all__ = ["contract_module_factory", "contract_factory"]  # fixtures used below

MAX_TIMEOUT = 2


@pytest.fixture(scope="module")
def server(contract_module_factory: ContractFactory) -> ContractServer:
    return contract_module_factory(
        "v2_actions", contract="v2", logs=False,
        env={"INTERNAL_RUNTIME_KEY": V2_KEY, "INTERNAL_RUNTIME_ENTRYPOINT": "main.py"},
        args=["--workers", "2", "--max-timeout", str(MAX_TIMEOUT)])


def call(server: ContractServer, payload: str, variables: Optional[dict[str, Any]] = None,
         headers: Optional[dict[str, Any]] = None, key: Optional[str] = V2_KEY,
         path: str = "/", raw: Optional[bytes] = None) -> tuple[Answer, Any]:
    """POST a v2 body; returns the answer and its body parsed as JSON (None if not)."""
    body = raw if raw is not None else json.dumps(
        {"variables": variables or {}, "payload": payload, "headers": headers or {}}).encode()
    hdrs = {"content-type": "application/json"}
    if key is not None:
        hdrs["x-internal-challenge"] = key
    answer = request(server.port, "POST", path, body, hdrs)
    try:
        parsed = json.loads(answer.body)
    except ValueError:
        parsed = None
    return answer, parsed


def test_echo(server: ContractServer) -> None:
    variables = {"A": "1", "URL": "https://example.test/x"}
    answer, body = call(server, "echo this", variables, {"x-h": "v"})
    assert answer.status == 200, answer
    assert (answer.header("content-type") or "").startswith("application/json")
    assert body == {"response": {"variables": variables, "env_is_variables": True,
                                 "payload": "echo this", "headers": {"x-h": "v"}},
                    "stdout": ""}
    assert answer.header("x-request-id")


def test_any_path(server: ContractServer) -> None:
    answer, body = call(server, "send-default", path="/some/where?x=1")
    assert answer.status == 200
    assert body["response"] == "default status"


def test_send_sets_status_and_returning_is_optional(server: ContractServer) -> None:
    answer, body = call(server, "send")
    assert answer.status == 201
    assert body == {"response": "sent as text", "stdout": ""}
    answer, body = call(server, "send-default")
    assert answer.status == 200
    assert body == {"response": "default status", "stdout": ""}


def test_json(server: ContractServer) -> None:
    answer, body = call(server, "json")
    assert answer.status == 202
    assert body["response"] == {"list": [1, "two"], "slash": "a/b", "uni": "é👋"}


def test_stdout(server: ContractServer) -> None:
    answer, body = call(server, "print")
    assert answer.status == 200
    assert body == {"response": "printed", "stdout": "hello stdout\nsecond line\n"}


def test_stdout_complete(server: ContractServer) -> None:
    for _ in range(10):
        answer, body = call(server, "print-many")
        assert answer.status == 200
        assert body["stdout"] == "".join(f"line {i}\n" for i in range(2000))


def test_exception(server: ContractServer) -> None:
    answer, body = call(server, "raise")
    assert answer.status == 500
    assert isinstance(body, dict), answer
    assert body["stdout"] == "before the failure\n"
    assert "to stderr" in body["stderr"]
    assert "Traceback" in body["stderr"]
    assert "ValueError: v2 failure 4242" in body["stderr"]
    # The worker goes on.
    assert call(server, "send")[0].status == 201


@pytest.mark.parametrize("payload", ["sleep", "spin"])
def test_timeout_is_max_timeout(server: ContractServer, payload: str) -> None:
    answer, body = call(server, payload)
    assert answer.status == 500
    assert MAX_TIMEOUT * 0.9 <= answer.seconds < MAX_TIMEOUT * 2.5, answer.seconds
    assert isinstance(body, dict), answer
    assert "timed out" in body.get("stderr", "").lower(), body
    assert call(server, "send")[0].status == 201


@pytest.mark.parametrize("key", [None, "", "wrong-key", V2_KEY + "x"])
def test_wrong_key(server: ContractServer, key: Optional[str]) -> None:
    answer, body = call(server, "send", key=key)
    assert answer.status == 401
    assert body == {"message": "Unauthorized", "code": 401}


@pytest.mark.parametrize("raw", [b"not json at all", b"{\"variables\": {", b"[1, 2]"])
def test_not_a_json_object(server: ContractServer, raw: bytes) -> None:
    answer, _ = call(server, "", raw=raw)
    assert answer.status == 400, answer
    assert b"json" in answer.body.lower(), answer


def test_health_and_other_methods(server: ContractServer) -> None:
    answer = request(server.port, "GET", "/__health")
    assert answer.status == 200
    assert json.loads(answer.body) == {"status": "ok"}
    answer = request(server.port, "GET", "/", headers={"x-internal-challenge": V2_KEY})
    assert answer.status == 405


def test_key_hidden(server: ContractServer) -> None:
    answer, body = call(server, "secrets", headers={"rkey": V2_KEY[::-1]})
    assert answer.status == 200
    assert body["response"] == {"has_key_var": False, "in_values": False}
    for pid in [server.pid] + [p for p, _ in descendants(server.pid)]:
        try:
            data = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        assert V2_KEY.encode() not in data, pid


def test_v2_chosen_by_pyrt_contract(contract_factory: ContractFactory) -> None:
    s = contract_factory("v2_actions", contract=None, logs=False, health_path="/__health",
                         env={"INTERNAL_RUNTIME_KEY": V2_KEY, "PYRT_CONTRACT": "v2"},
                         args=["--workers", "1"])
    answer, body = call(s, "send")
    assert answer.status == 201
    assert body == {"response": "sent as text", "stdout": ""}


@pytest.mark.parametrize("function,expected", [
    ("v5_syntax", "SyntaxError"),
    ("v5_nomain", "main"),
])
def test_broken_entry_point_is_an_envelope(contract_factory: ContractFactory, function: str,
                                           expected: str) -> None:
    s = contract_factory(function, contract="v2", logs=False, health_path="/__health",
                         env={"INTERNAL_RUNTIME_KEY": V2_KEY}, args=["--workers", "1"])
    for _ in range(2):
        answer, body = call(s, "send")
        assert answer.status == 500, answer
        assert isinstance(body, dict) and "stderr" in body, answer  # JSON the executor reads
        assert expected in body["stderr"], body


def test_missing_fields_default(server: ContractServer) -> None:
    answer, body = call(server, "", raw=json.dumps({"payload": "echo only"}).encode())
    assert answer.status == 200, answer
    assert body["response"]["variables"] == {}
    assert body["response"]["headers"] == {}
    assert body["response"]["payload"] == "echo only"
