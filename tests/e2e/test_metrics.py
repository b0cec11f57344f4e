"""GET /__metrics, scraped by a real Prometheus (Debian's `prometheus`), and the JSON log.

A known mix of requests (ok, error, timeout, crash, 401, 503, 400) goes to one server;
then Prometheus, started on 127.0.0.1 with a scrape config pointing at pyrt, must report
exactly those counts through its HTTP query API, and `promtool check metrics` must accept
the exposition. The JSON log of the same run must be one valid object per line, its
request ids those the client saw, and no record may contain the key.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from conftest import Parallel, Server, ServerFactory, free_port, get, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SCRAPE_INTERVAL = 1.0
LOG_KEY = "pyrt-metrics-key-7f3a9c"  # distinctive, so that finding it means a leak

pytestmark = pytest.mark.skipif(
    not (os.path.exists(PROMETHEUS) and os.path.exists(PROMTOOL)),
    reason="Debian's prometheus is not installed (make test installs it)")


def scrape(server: Server) -> str:
    status, headers, body = get(server.port, "/__metrics")
    assert status == 200, body
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return body.decode()


def sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {line_start!r} in:\n{text}")


# --------------------------------------------------------------------------- Prometheus

class Prometheus:
    """A real Prometheus on 127.0.0.1, scraping `targets` every second; stopped by PID."""

    def __init__(self, work: Path, targets: list[int]) -> None:
        self.port = free_port()
        config = work / "prometheus.yml"
        config.write_text(
            "global:\n"
            f"  scrape_interval: {SCRAPE_INTERVAL:g}s\n"
            f"  scrape_timeout: {SCRAPE_INTERVAL:g}s\n"
            "scrape_configs:\n"
            "  - job_name: pyrt\n"
            "    metrics_path: /__metrics\n"
            "    static_configs:\n"
            "      - targets: [" + ", ".join(f"'127.0.0.1:{p}'" for p in targets) + "]\n")
        self.log = open(work / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        ok = wait_until(lambda: self._ready(), 30)
        if not ok:
            self.stop()
            pytest.fail("prometheus did not become ready within 30 s:\n"
                        + (work / "prometheus.log").read_text(errors="replace")[-3000:])

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready",
                                        timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=5) as resp:
            data = json.loads(resp.read())
        assert data["status"] == "success", data
        return data["data"]["result"]

    def value(self, expr: str) -> Optional[float]:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture
def prometheus_work(tmp_path: Path) -> Iterator[Path]:
    work = tmp_path / "prometheus"
    work.mkdir()
    yield work


# --------------------------------------------------------------------------- the mix

MIX = {"ok": 5, "error": 2, "timeout": 1, "crash": 1, "unauthorized": 3, "bad_request": 2}


def wait_idle(server: Server) -> None:
    assert wait_until(lambda: sample(scrape(server), 'pyrt_workers{state="idle"}') >= 1, 10)


def send_mix(server: Server) -> list[str]:
    """Sends MIX; returns the x-request-id of every answer."""
    ids: list[str] = []

    def call(name: str, payload: Any = None, timeout: Optional[float] = None,
             **kw: Any) -> int:
        kw.setdefault("key", server.key)
        status, headers, _ = server.call_raw(name, payload, timeout=timeout, **kw)
        ids.append(headers["x-request-id"])
        return status

    for _ in range(MIX["ok"]):
        assert call("hello") == 200
    for _ in range(MIX["error"]):
        assert call("raises", {"kind": "value"}) == 500
    assert call("hang", {"how": "spin"}, timeout=0.5) == 500
    wait_idle(server)  # one worker, no queue: its replacement first
    assert call("crash", {"how": "exit"}) == 500
    wait_idle(server)
    for _ in range(MIX["unauthorized"]):
        assert call("hello", key="wrong") == 401
    for _ in range(MIX["bad_request"]):
        status, headers, _ = server.post(b"[1, 2]", key=server.key)  # not an object: 400
        ids.append(headers["x-request-id"])
        assert status == 400
    return ids


def test_prometheus_counts_what_was_sent(server_factory: ServerFactory,
                                         prometheus_work: Path) -> None:
    server = server_factory(["--workers", "1", "--max-queue", "0", "--log-format", "json"],
                            key=LOG_KEY)
    prom = Prometheus(prometheus_work, [server.port])
    try:
        ids = send_mix(server)
        # 503s: a slow execution holds the only worker, with no queue.
        busy = Parallel()
        busy.start(lambda: server.call("sleep", {"sleep": 1.5}, key=LOG_KEY))
        wait_until(lambda: sample(scrape(server), "pyrt_executions_in_flight") == 1, 5)
        rejected = [server.call_raw("hello", key=LOG_KEY)[0] for _ in range(2)]
        busy.join(10)
        assert rejected == [503, 503]
        expected = dict(MIX, ok=MIX["ok"] + 1, rejected_busy=2)

        def counts() -> dict[str, float]:
            got: dict[str, float] = {}
            for series in prom.query("sum by (outcome) (pyrt_executions_total)"):
                got[series["metric"]["outcome"]] = float(series["value"][1])
            return got

        final = wait_until(lambda: (lambda c: c if all(
            c.get(k) == v for k, v in expected.items()) else None)(counts()), 20)
        assert final, f"Prometheus says {counts()}, sent {expected}"
        assert counts().get("memory", 0) == 0
        assert prom.value('pyrt_worker_replacements_total{reason="timeout"}') == 1
        assert prom.value('pyrt_worker_replacements_total{reason="crash"}') == 1
        assert prom.value("pyrt_execution_duration_seconds_count") == sum(
            v for k, v in expected.items() if k not in ("unauthorized", "bad_request"))
        assert prom.value('up{job="pyrt"}') == 1

        # promtool accepts the exposition as it is.
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=scrape(server).encode(),
                               capture_output=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        prom.stop()

    # The JSON log of the same run: every line an object; the ids the client saw.
    records = [json.loads(line) for line in server.log_text().splitlines() if line.strip()]
    access = {r["request_id"]: r for r in records if r.get("event") == "access"}
    for rid in ids:
        assert rid in access, f"no access record for {rid}"
    for record in records:
        assert {"time", "level", "role", "pid"} <= set(record), record
        assert LOG_KEY not in json.dumps(record)


def test_metrics_answered_while_every_worker_is_busy(server_factory: ServerFactory) -> None:
    """No key, no Python: the master answers even with every worker caught."""
    server = server_factory(["--workers", "1"])
    busy = Parallel()
    busy.start(lambda: server.call("sleep", {"sleep": 2}))
    wait_until(lambda: sample(scrape(server), "pyrt_executions_in_flight") == 1, 5)
    start = time.monotonic()
    text = scrape(server)
    assert time.monotonic() - start < 0.5
    assert sample(text, 'pyrt_workers{state="busy"}') == 1
    busy.join(10)


def test_no_metrics_flag(server_factory: ServerFactory) -> None:
    server = server_factory(["--no-metrics"])
    status, _, _ = get(server.port, "/__metrics")
    assert status == 405


def test_json_log_escapes_any_output(server_factory: ServerFactory) -> None:
    """A function's output of any bytes (invalid UTF-8, control characters, a 64 KiB
    line) is one valid JSON record per line, tagged with its request id and stream."""
    server = server_factory(["--log-format", "json"], files={"bytes_out/index.py": BYTES_OUT})
    status, headers, _ = server.call_raw("bytes_out")
    assert status == 200
    rid = headers["x-request-id"]
    server.stop()
    records = [json.loads(line) for line in server.log_text().splitlines() if line.strip()]
    output = [r for r in records if r.get("event") == "output" and r["request_id"] == rid]
    messages = [r["message"] for r in output]
    assert {r["stream"] for r in output} == {"stdout", "stderr"}
    assert "bad \ufffd\ufffd byte" in messages
    assert 'quote " backslash \\ tab \t bell \x07 esc \x1b[0m' in messages
    assert "caf\u00e9 \U0001f44b" in messages
    assert any(m.startswith("L" * 1000) for m in messages)  # the 64 KiB line, split


BYTES_OUT = """\
import os
import sys


def main(req, res):
    os.write(1, b"bad \\xff\\xfe byte\\n")
    print('quote " backslash \\\\ tab \\t bell \\x07 esc \\x1b[0m')
    sys.stderr.write("caf\\u00e9 \\U0001f44b\\n")
    print("L" * 70000)
    return res.send("ok")
"""


def test_max_requests_turns_workers_over(server_factory: ServerFactory) -> None:
    """--max-requests 5 under a steady stream from 4 clients: workers are replaced by
    fresh forks between executions (5 to 5.5 executions each), and no request fails."""
    server = server_factory(["--workers", "2", "--max-requests", "5"], files={
        "pid/index.py": "import os\n\n\ndef main(req, res):\n"
                        "    return res.json({'pid': os.getpid()})\n"})
    pids: list[int] = []
    statuses: list[int] = []

    def client() -> None:
        for _ in range(25):
            status, _, body = server.call("pid")
            statuses.append(status)
            if status == 200:
                pids.append(body["pid"])

    clients = Parallel()
    for _ in range(4):
        clients.start(client)
    clients.join(60)
    assert statuses == [200] * 100, sorted(set(statuses))
    per_worker = {pid: pids.count(pid) for pid in set(pids)}
    assert len(per_worker) >= 100 // 6, per_worker  # at most 5.5 each (rounded: 5)
    assert max(per_worker.values()) <= 5, per_worker
    replaced = sample(scrape(server), 'pyrt_worker_replacements_total{reason="max_requests"}')
    assert replaced >= len(per_worker) - 2
