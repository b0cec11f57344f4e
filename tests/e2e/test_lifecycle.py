"""What orchestrators rely on: readiness beside liveness, a drain on SIGTERM, a bound on
the shutdown, the worker count from the executor's CPU share, and group signals.

/__ready (and OpenFaaS' /_/ready, /_/health) need no key and run no Python; /__ready
is 503 when a request now would get 503 (every worker busy, the queue full) and from
SIGTERM on.
"""

from __future__ import annotations

import os
import signal
import time

from conftest import (Parallel, ServerFactory, get, pool_processes, wait_pool, wait_until)


def status_of(port: int, path: str) -> int:
    return get(port, path, timeout=5)[0]


def in_flight(port: int) -> int:
    for line in get(port, "/__metrics")[2].decode().splitlines():
        if line.startswith("pyrt_executions_in_flight "):
            return int(line.split()[1])
    raise AssertionError("no pyrt_executions_in_flight")


def test_ready_and_aliases(server_factory: ServerFactory) -> None:
    server = server_factory(["--workers", "1", "--max-queue", "0"])
    assert status_of(server.port, "/__ready") == 200
    assert status_of(server.port, "/_/ready") == 200
    status, _, body = get(server.port, "/_/health")
    assert (status, body) == (200, b'{"status": "ok"}')
    # The one worker busy and no queue: a request now would get 503, so not ready;
    # liveness stays 200.
    busy = Parallel()
    busy.start(lambda: server.call("sleep", {"sleep": 1.2}))
    assert wait_until(lambda: status_of(server.port, "/__ready") == 503, 5)
    start = time.monotonic()
    assert status_of(server.port, "/__health") == 200
    assert time.monotonic() - start < 0.5
    busy.join(15)
    assert wait_until(lambda: status_of(server.port, "/__ready") == 200, 5)


def test_drain_delay_keeps_serving_while_not_ready(server_factory: ServerFactory) -> None:
    """SIGTERM with --drain-delay 1.5: /__ready is 503 at once, executions are still
    served (their answers close the connection), then the listener closes and pyrt
    exits 0 once what runs is done."""
    server = server_factory(["--workers", "1", "--drain-delay", "1.5"])
    server.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    # At once: the next loop turn (a GET may be read in the same turn as the signal).
    assert wait_until(lambda: status_of(server.port, "/__ready") == 503, 0.5, step=0.01)
    assert b"draining" in get(server.port, "/__ready")[2]
    status, headers, payload = server.call("sleep", {"sleep": 0.2})
    assert status == 200 and headers.get("connection") == "close", headers
    assert time.monotonic() - signalled < 1.5  # served during the delay
    assert server.wait(10) == 0
    elapsed = time.monotonic() - signalled
    assert 1.4 < elapsed < 5, elapsed
    server.stopped = True


def test_shutdown_timeout_stops_what_still_runs(server_factory: ServerFactory) -> None:
    """--shutdown-timeout 1: an execution that would run 30 s more is answered (500,
    naming why) about 1 s after the listener closed, and pyrt exits 0."""
    server = server_factory(["--workers", "1", "--shutdown-timeout", "1"])
    slow = Parallel()
    slow.start(lambda: server.call("sleep", {"sleep": 30}, timeout=60))
    assert wait_until(lambda: in_flight(server.port) == 1, 5)
    server.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    (status, _, body), = slow.join(20)
    assert status == 500 and "--shutdown-timeout" in body["message"], body
    assert server.wait(10) == 0
    assert time.monotonic() - signalled < 5
    server.stopped = True


def test_workers_follow_open_runtimes_cpus(server_factory: ServerFactory) -> None:
    server = server_factory(env={"OPEN_RUNTIMES_CPUS": "1.5"})  # rounded up: 2
    _, workers = wait_pool(server, 2)
    assert len(workers) == 2


def test_group_signal_reaches_the_master_alone(server_factory: ServerFactory) -> None:
    """Ctrl-C on a terminal signals the whole foreground group: the zygote and the workers
    are in a group of their own, so the running execution is finished, not killed."""
    # Its own session and group, as a terminal's foreground job: the test's is not hit.
    server = server_factory(["--workers", "1"], prefix=["setsid"])
    assert os.getpgid(server.pid) == server.pid != os.getpgid(0)
    zygotes, workers, _ = pool_processes(server)
    assert zygotes and workers
    assert os.getpgid(zygotes[0]) != os.getpgid(server.pid)
    assert os.getpgid(workers[0]) == os.getpgid(zygotes[0])
    slow = Parallel()
    slow.start(lambda: server.call("sleep", {"sleep": 0.8}))
    assert wait_until(lambda: in_flight(server.port) == 1, 5)
    os.killpg(os.getpgid(server.pid), signal.SIGINT)  # the master's group, as Ctrl-C
    (status, _, _), = slow.join(15)
    assert status == 200
    assert server.wait(10) == 0
    server.stopped = True
