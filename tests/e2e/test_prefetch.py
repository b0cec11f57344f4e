"""Prefetch: under load a busy worker gets its next execution before it answers the
current one (proto/gate.h). None of it may show: output keeps its request id, a
deadline still counts from receipt and a timed-out execution never runs, an idle
worker takes back what waits behind a busy one, and an execution waiting behind a
worker that dies or is recycled runs elsewhere instead of failing."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from conftest import Parallel, ServerFactory, post

MARKER_FN = """\
import os
import time


def main(req, res):
    p = req.payload
    if p.get("sleep"):
        time.sleep(p["sleep"])
    if p.get("mark"):
        with open(p["mark"], "w") as f:
            f.write("ran")
    if p.get("crash"):
        os._exit(3)
    for i in range(p.get("lines", 0)):
        print(f"{p['marker']}-{i}")
    return res.json({"marker": p.get("marker"), "pid": os.getpid()})
"""


def body(**payload: Any) -> dict[str, Any]:
    return {"file": "fn/index.py", "payload": payload}


def test_output_keeps_its_request_id_under_load(server_factory: ServerFactory) -> None:
    """One worker, eight clients: executions are prefetched back to back, and each
    printed line must still carry the id of the execution that printed it."""
    server = server_factory(["--workers", "1"], files={"fn/index.py": MARKER_FN})
    par = Parallel()
    markers = [uuid.uuid4().hex[:12] for _ in range(8)]

    def client(marker: str) -> list[tuple[str, str]]:
        seen = []
        for round_ in range(15):
            m = f"{marker}r{round_}"
            status, headers, raw = post(server.port, body(marker=m, lines=3), timeout=30)
            assert status == 200, raw
            seen.append((m, headers["x-request-id"]))
        return seen

    for marker in markers:
        par.start(lambda marker=marker: client(marker))
    results = par.join(90)
    expected = {m: req_id for seen in results for m, req_id in seen}
    assert len(expected) == 8 * 15
    deadline = time.monotonic() + 10
    while True:
        lines = [ln for ln in server.log_lines() if " stdout: " in ln.msg]
        if len(lines) >= 3 * len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    wrong = []
    for ln in lines:
        head, text = ln.msg.split(" stdout: ", 1)
        req_id = head.split("req=", 1)[1]
        marker = text.rsplit("-", 1)[0]
        if expected.get(marker) != req_id:
            wrong.append((text, req_id, expected.get(marker)))
    assert len(lines) == 3 * len(expected)
    assert not wrong, f"{len(wrong)} lines with another execution's id: {wrong[:5]}"


def test_a_waiting_execution_times_out_and_never_runs(server_factory: ServerFactory,
                                                      tmp_path: Path) -> None:
    server = server_factory(["--workers", "1"], files={"fn/index.py": MARKER_FN})
    mark = tmp_path / "ran"
    tmp_path.chmod(0o777)
    par = Parallel()
    par.start(lambda: post(server.port, {**body(sleep=1.5), "timeout": 10}, timeout=30))
    time.sleep(0.2)  # the first one runs; the next waits behind it (prefetched)
    start = time.monotonic()
    status, _, raw = post(server.port, {**body(mark=str(mark)), "timeout": 0.5}, timeout=30)
    elapsed = time.monotonic() - start
    assert status == 500
    assert json.loads(raw) == {"message": "Execution timed out after 0.5 seconds", "code": 500}
    assert elapsed < 1.2, f"answered after {elapsed:.2f} s for a 0.5 s deadline"
    first = par.join(30)[0]
    assert first[0] == 200
    time.sleep(0.5)
    assert not mark.exists(), "an execution answered as timed out ran afterwards"
    # The worker skipped it and goes on serving.
    assert server.post(body(marker="after"))[0] == 200


def test_an_idle_worker_takes_back_what_waits_elsewhere(server_factory: ServerFactory) -> None:
    server = server_factory(["--workers", "2"], files={"fn/index.py": MARKER_FN})
    par = Parallel()
    par.start(lambda: post(server.port, body(sleep=3, marker="long"), timeout=30))
    par.start(lambda: post(server.port, body(sleep=0.3, marker="short"), timeout=30))
    time.sleep(0.15)
    # Both workers busy: this one is prefetched behind one of them. If that is the
    # long one, the other worker must take it back when it falls idle.
    times = []
    for _ in range(3):
        start = time.monotonic()
        status, _, raw = post(server.port, body(marker="quick"), timeout=30)
        times.append(time.monotonic() - start)
        assert status == 200, raw
    assert max(times) < 1.5, f"waited behind the long execution: {times}"
    assert [r[0] for r in par.join(30)] == [200, 200]


def test_waiting_behind_a_worker_that_dies_runs_elsewhere(server_factory: ServerFactory) -> None:
    server = server_factory(["--workers", "1"], files={"fn/index.py": MARKER_FN})
    par = Parallel()
    par.start(lambda: post(server.port, body(sleep=0.5, crash=True), timeout=30))
    time.sleep(0.15)
    status, _, raw = post(server.port, body(marker="behind"), timeout=30)
    assert status == 200, raw
    assert json.loads(raw)["marker"] == "behind"
    crashed = par.join(30)[0]
    assert crashed[0] == 500
    assert json.loads(crashed[2])["message"] == "worker exited with status 3"


def test_waiting_behind_a_timed_out_execution_runs_elsewhere(
        server_factory: ServerFactory) -> None:
    server = server_factory(["--workers", "1"], files={"fn/index.py": MARKER_FN})
    par = Parallel()
    par.start(lambda: post(server.port, {**body(sleep=30), "timeout": 0.6}, timeout=30))
    time.sleep(0.15)
    start = time.monotonic()
    status, _, raw = post(server.port, {**body(marker="behind"), "timeout": 10}, timeout=30)
    assert status == 200, raw
    assert time.monotonic() - start < 5
    first = par.join(30)[0]
    assert json.loads(first[2])["message"] == "Execution timed out after 0.6 seconds"


def test_max_queue_counts_what_waits_behind_a_worker(server_factory: ServerFactory) -> None:
    server = server_factory(["--workers", "1", "--max-queue", "0"],
                            files={"fn/index.py": MARKER_FN})
    par = Parallel()
    par.start(lambda: post(server.port, body(sleep=1), timeout=30))
    time.sleep(0.2)
    status, _, raw = post(server.port, body(marker="x"), timeout=30)
    assert status == 503 and json.loads(raw)["message"] == "Server busy"
    assert par.join(30)[0][0] == 200


def test_a_small_call_behind_a_large_one_survives(server_factory: ServerFactory) -> None:
    """The worker reads a large body in big chunks, which can take in the start of the
    CALL prefetched behind it; that CALL must survive the worker dropping its big
    buffer."""
    server = server_factory(["--workers", "1"], files={"fn/index.py": MARKER_FN})
    par = Parallel()
    big = "x" * (6 * 1024 * 1024)
    for i in range(3):
        par.start(lambda: post(server.port, body(sleep=0.3, marker="big", pad=big), timeout=60))
        time.sleep(0.05)
        par.start(lambda i=i: post(server.port, body(marker=f"small{i}"), timeout=60))
        time.sleep(0.4)
    results = par.join(60)
    assert [r[0] for r in results] == [200] * 6, [r[2][:200] for r in results]
    assert sorted(json.loads(r[2])["marker"] for r in results) == [
        "big", "big", "big", "small0", "small1", "small2"]
