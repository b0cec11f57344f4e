"""The upstream runtime's own test: one execution and one wrong key."""

from __future__ import annotations

import pytest

from conftest import WRONG_KEY, Server, ServerFactory


@pytest.fixture(scope="module")
def server(module_factory: ServerFactory) -> Server:
    return module_factory()


def upstream_body(server: Server) -> dict:
    return {
        "path": str(server.fn("upstream")),
        "file": "index.py",
        "env": {"ENV1": "Hello World!"},
        "payload": "Hello World! 2",
        "timeout": 60,
        "headers": {"test": "test1"},
    }


def test_upstream_execution(server: Server) -> None:
    status, headers, body = server.post_json(upstream_body(server))
    assert status == 200, body
    assert body == {"normal": "Hello World!", "env1": "Hello World!",
                    "payload": "Hello World! 2"}
    assert headers["content-type"].startswith("application/json")


def test_upstream_wrong_key(server: Server) -> None:
    status, _, body = server.post_json(upstream_body(server), key=WRONG_KEY)
    assert status == 401
    assert body == {"message": "Unauthorized", "code": 401}


def test_missing_key_header(server: Server) -> None:
    status, _, body = server.post_json(upstream_body(server), key=None)
    assert status == 401
    assert body == {"message": "Unauthorized", "code": 401}


@pytest.mark.parametrize("key", ["secre", "secret2", "Secret", "secrex", ""])
def test_near_miss_keys(server: Server, key: str) -> None:
    status, _, body = server.post_json(upstream_body(server), key=key)
    assert status == 401, f"key {key!r} accepted"
    assert body == {"message": "Unauthorized", "code": 401}
