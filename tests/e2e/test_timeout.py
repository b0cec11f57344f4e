"""Executions past their timeout are stopped and answered 500."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from conftest import (Parallel, Server, ServerFactory, alive, all_pids, post, proc_cmdline,
                      wait_until)

DEFAULT_TIMEOUT = 2
MAX_TIMEOUT = 3


@pytest.fixture(scope="module")
def server(module_factory: ServerFactory) -> Server:
    return module_factory(["--workers", "1", "--default-timeout", str(DEFAULT_TIMEOUT),
                           "--max-timeout", str(MAX_TIMEOUT)])


def timed(server: Server, payload: dict, timeout: float | None) -> tuple[int, dict, dict, float]:
    start = time.monotonic()
    status, headers, body = server.call("hang", payload, timeout=timeout)
    return status, headers, body, time.monotonic() - start


def assert_timed_out(status: int, body: dict, n: str) -> None:
    assert status == 500, body
    assert body == {"message": f"Execution timed out after {n} seconds", "code": 500}


def test_spin_times_out(server: Server) -> None:
    status, headers, body, elapsed = timed(server, {"how": "spin"}, 1)
    assert_timed_out(status, body, "1")
    assert 0.9 <= elapsed < 3.0, f"answered after {elapsed:.2f} s"
    access = server.access_lines(headers.get("x-request-id", "?"))
    assert [m["outcome"] for m in access] == ["timeout"], access


def test_fractional_timeout(server: Server) -> None:
    status, _, body, elapsed = timed(server, {"how": "spin"}, 1.5)
    assert_timed_out(status, body, "1.5")
    assert 1.4 <= elapsed < 4.0, f"answered after {elapsed:.2f} s"


def test_sleep_times_out(server: Server) -> None:
    status, _, body, elapsed = timed(server, {"how": "sleep"}, 1)
    assert_timed_out(status, body, "1")
    assert elapsed < 3.0


def test_next_request_succeeds(server: Server) -> None:
    status, _, _, _ = timed(server, {"how": "spin"}, 1)
    assert status == 500
    start = time.monotonic()
    status, _, body = server.call_raw("hello")
    assert status == 200 and body == b"hello"
    assert time.monotonic() - start < 2.0


def test_default_timeout_applies(server: Server) -> None:
    status, _, body, elapsed = timed(server, {"how": "spin"}, None)
    assert_timed_out(status, body, str(DEFAULT_TIMEOUT))
    assert DEFAULT_TIMEOUT - 0.1 <= elapsed < DEFAULT_TIMEOUT * 2 + 1


def test_timeout_capped_at_max_timeout(server: Server) -> None:
    status, _, body, elapsed = timed(server, {"how": "spin"}, 60)
    assert_timed_out(status, body, str(MAX_TIMEOUT))
    assert MAX_TIMEOUT - 0.1 <= elapsed < MAX_TIMEOUT * 2 + 1


@pytest.mark.parametrize("how", ["child", "setsid_child"])
def test_child_processes_are_stopped(server: Server, how: str) -> None:
    sleep_arg = f"1000.{random.randrange(10**8):08d}"

    def children() -> list[int]:
        return [p for p in all_pids() if proc_cmdline(p) == f"sleep {sleep_arg}" and alive(p)]

    status, _, body, _ = timed(server, {"how": how, "sleep_arg": sleep_arg}, 1)
    assert_timed_out(status, body, "1")
    left = wait_until(lambda: not children(), 3.0)
    still = children()
    for pid in still:
        os.kill(pid, signal.SIGKILL)
    assert left and not still, f"child {still} ({how}) of a timed-out execution still running"


def test_queue_time_counts(server: Server) -> None:
    # One worker: the second request waits 2 s in the queue, longer than its 1 s timeout.
    par = Parallel()
    par.start(lambda: post(server.port, {"path": str(server.fn("sleep")),
                                         "payload": {"sleep": 2}, "timeout": 3}))
    time.sleep(0.2)
    start = time.monotonic()
    status, _, body = server.call("hello", timeout=1)
    elapsed = time.monotonic() - start
    first = par.join(10)[0]
    assert first[0] == 200
    assert status == 500 and body == {"message": "Execution timed out after 1 seconds",
                                      "code": 500}, body
    assert elapsed < 1.9, f"queued request answered after {elapsed:.2f} s"
