"""Drain behind a load balancer: three pyrt instances behind Debian's HAProxy, one of them
SIGTERMed under load, and a real Prometheus scraping all three.

HAProxy (started by hand on 127.0.0.1, stopped by PID) health-checks every instance with
`GET /__ready` every 200 ms. An open-loop client sends RATE requests a second for
DURATION seconds through it, to a function that sleeps 50-200 ms. Midway, while the
victim has executions in flight, it gets SIGTERM with `--drain-delay 1.5`: its /__ready
turns 503 at once, HAProxy takes it out of the rotation within a check or two, it keeps
serving until the delay is over, then closes its listener, finishes what it holds and
exits 0. The client must see no answer but 200, and every execution in flight at the
signal must be answered.

Counting exactly. `pyrt_executions_total` of the victim cannot be had from Prometheus
alone: Prometheus scrapes every second and marks the victim's series stale once it stops
answering, and the victim's last execution ends about half a second into a 1.5 s drain,
so its last scrape may or may not come after its last execution. So the test reads the
victim's final counter itself, from its /__metrics during the drain: once HAProxy shows
it DOWN with no connection open to it and its in-flight and queued gauges are 0, nothing
can change that counter (only executions count; HAProxy sends it nothing more). The
summed execution counter is then Prometheus' `sum(pyrt_executions_total)` over the two
survivors (waited for until the victim is `up == 0`, i.e. its series are stale, and the
survivors' final scrape is in) plus that final reading, and it must equal the requests
sent. It is also checked per instance against what the client saw (the function answers
its master's pid) and, for the victim, against the POST lines of its access log; and
Prometheus must have scraped the victim too (`up` was 1, its last value at most the
final one). A request HAProxy retried after pyrt had run it would show up here as one
execution too many.

The one-line summary (`pytest -s`) gives the figures quoted in the closing note.
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import pytest

from conftest import (ACCESS_RE, HOST, Server, ServerFactory, free_port, get, post,
                      wait_until)
from test_metrics import PROMETHEUS, PROMTOOL, Prometheus, sample

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(HAPROXY) and os.path.exists(PROMETHEUS)
         and os.path.exists(PROMTOOL)),
    reason="Debian's haproxy and prometheus are not installed (make test installs them)")

DRAIN_DELAY = 1.5          # --drain-delay of every instance
WORKERS = 2                # --workers of every instance
RATE = 40                  # requests a second, open loop
DURATION = 6.0             # seconds of load
TOTAL = int(RATE * DURATION)
SIGTERM_AT = 2.5           # seconds into the load: then wait for >= 2 in flight (<= 2 s)
MIN_MS, MAX_MS = 50, 200   # what the function sleeps
CHECK_INTER_MS = 200       # HAProxy's health-check interval
REQUEST_TIMEOUT = 30.0
# The victim must exit within drain-delay + its longest execution, with 2x slack.
EXIT_BOUND = 2 * (DRAIN_DELAY + MAX_MS / 1000)

FUNCTION = "drain_sleep"
FUNCTION_CODE = """\
import os
import time


def main(req, res):
    payload = req.payload if isinstance(req.payload, dict) else {}
    time.sleep(payload.get("ms", 100) / 1000)
    return res.json({"seq": payload.get("seq"), "master": os.getppid()})
"""


def sleep_ms(seq: int) -> int:
    """50 to 200 ms, spread evenly over the requests."""
    return MIN_MS + (seq * 37) % (MAX_MS - MIN_MS + 1)


# --------------------------------------------------------------------------- HAProxy

# The backend, annotated: it is the configuration docs/ can quote.
HAPROXY_CFG = """\
global
    log stdout format raw local0 info
    nbthread 1
    maxconn 1024

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    # A failed attempt is tried again (up to 3 times), each time on another server.
    # conn-failure: the connection was refused or never established (the listener of a
    # stopping instance is closed): the request never reached pyrt, so it is safe to
    # send again. empty-response: the connection was closed before any byte of an answer
    # (a connection left in the kernel's backlog when the listener closes): pyrt never
    # read it, since pyrt answers every request it reads. Never a timeout or a 5xx: those
    # may have run the function.
    retries 3
    retry-on conn-failure empty-response
    option redispatch 1

frontend fe
    bind 127.0.0.1:{port}
    default_backend pyrt

backend pyrt
    balance roundrobin
    # One connection per request to pyrt (the client side stays keep-alive). Reusing an
    # idle server connection races with pyrt closing it when it stops: a request written
    # on a connection pyrt is closing is lost or must be retried blind. With a fresh
    # connection every time, a stopping instance can only refuse the connect, which is
    # the one failure that is always safe to retry; the cost is one loopback handshake.
    # (pyrt also answers with Connection: close while it drains.)
    option http-server-close
    option httpchk GET /__ready
    http-check expect status 200
    # fall 1: the first 503 from /__ready takes the server out, within ~inter of the
    # SIGTERM, well inside --drain-delay; rise 2: back only after two good checks.
{servers}

listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"""
SERVER_LINE = "    server s{n} 127.0.0.1:{port} check inter {inter}ms fall 1 rise 2"


class HAProxy:
    """Debian's haproxy in the foreground (-db) on 127.0.0.1; stopped by PID."""

    def __init__(self, work: Path, ports: list[int]) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.stats_port = free_port()
        servers = "\n".join(SERVER_LINE.format(n=i + 1, port=p, inter=CHECK_INTER_MS)
                            for i, p in enumerate(ports))
        self.config = work / "haproxy.cfg"
        self.config.write_text(HAPROXY_CFG.format(port=self.port, stats_port=self.stats_port,
                                                  servers=servers))
        check = subprocess.run([HAPROXY, "-c", "-f", str(self.config)],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log_path = work / "haproxy.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config)],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        names = [f"s{i + 1}" for i in range(len(ports))]
        if not wait_until(lambda: self._all_up(names), 10, step=0.1):
            self.stop()
            pytest.fail(f"haproxy: not every server UP within 10 s: {self._states()}\n"
                        + self.log_tail())

    def stats(self) -> dict[str, dict[str, str]]:
        """The rows of `show stat` for the backend's servers, by name."""
        status, _, body = get(self.stats_port, "/stats;csv", timeout=2.0)
        assert status == 200, body
        lines = body.decode().splitlines()
        fields = lines[0].lstrip("# ").split(",")
        return {row["svname"]: row for row in csv.DictReader(lines[1:], fieldnames=fields)
                if row["pxname"] == "pyrt" and row["svname"] not in ("FRONTEND", "BACKEND")}

    def _states(self) -> dict[str, str]:
        try:
            return {k: f"{v['status']} {v['check_status']}" for k, v in self.stats().items()}
        except (OSError, http.client.HTTPException):
            return {}

    def _all_up(self, names: list[str]) -> bool:
        states = self._states()
        return all(states.get(n) == "UP L7OK" for n in names)

    def log_tail(self, n: int = 30) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


# --------------------------------------------------------------------------- the load

@dataclass
class Answer:
    seq: int
    status: int       # -1: no HTTP answer at all
    master: int       # the pid of the pyrt master that ran it (0: unknown)
    error: str


def one_request(port: int, seq: int) -> Answer:
    body = {"path": FUNCTION, "file": "index.py",
            "payload": {"ms": sleep_ms(seq), "seq": seq}}
    try:
        status, _, data = post(port, body, headers={"x-request-id": f"drain-{seq}"},
                               timeout=REQUEST_TIMEOUT)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(seq, -1, 0, repr(exc))
    if status != 200:
        return Answer(seq, status, 0, data[:200].decode(errors="replace"))
    answer = json.loads(data)
    assert answer["seq"] == seq, answer
    return Answer(seq, status, int(answer["master"]), "")


class Load:
    """Open loop: request `seq` leaves at t0 + seq / RATE, each on its own connection,
    whatever happened to the others."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.pool = ThreadPoolExecutor(max_workers=64)
        self.futures: list[Future[Answer]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.thread.start()

    def _run(self) -> None:
        for seq in range(TOTAL):
            delay = self.t0 + seq / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.futures.append(self.pool.submit(one_request, self.port, seq))

    def join(self, timeout: float) -> list[Answer]:
        deadline = time.monotonic() + timeout
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the load did not finish sending in time"
        done, pending = wait_futures(self.futures, max(0.0, deadline - time.monotonic()))
        self.pool.shutdown(wait=False, cancel_futures=True)
        assert not pending, f"{len(pending)} requests unanswered after {timeout} s"
        return sorted((f.result() for f in done), key=lambda a: a.seq)

    def abandon(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- pyrt side

def metrics(server: Server) -> str:
    status, _, body = get(server.port, "/__metrics", timeout=2.0)
    assert status == 200, body
    return body.decode()


def executions(text: str) -> int:
    """The sum of every pyrt_executions_total series in one scrape."""
    return int(sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("pyrt_executions_total{")))


def busy(server: Server) -> int:
    """Executions running or waiting for a worker."""
    text = metrics(server)
    return int(sample(text, "pyrt_executions_in_flight")
               + sample(text, "pyrt_executions_queued"))


def ready_status(server: Server) -> int:
    try:
        return get(server.port, "/__ready", timeout=1.0)[0]
    except (OSError, http.client.HTTPException):
        return -1


@dataclass
class Access:
    req_id: str
    status: int
    start: float     # wall clock, seconds: the request's first byte
    end: float       # wall clock: its answer


def post_accesses(server: Server) -> list[Access]:
    """The access lines of the server's POSTs (executions), with their time span."""
    out = []
    for line in server.log_lines():
        m = ACCESS_RE.match(line.msg)
        if line.role != "master" or not m or m["method"] != "POST":
            continue
        end = datetime.strptime(line.time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=timezone.utc).timestamp()
        out.append(Access(m["id"], int(m["status"]), end - float(m["ms"]) / 1000, end))
    return out


# --------------------------------------------------------------------------- the test

def test_sigterm_behind_haproxy_loses_nothing(server_factory: ServerFactory,
                                              tmp_path: Path) -> None:
    servers = [server_factory(["--drain-delay", f"{DRAIN_DELAY:g}", "--workers", str(WORKERS)],
                              files={f"{FUNCTION}/index.py": FUNCTION_CODE})
               for _ in range(3)]
    victim = servers[1]
    instance = {s.pid: f"{HOST}:{s.port}" for s in servers}
    (tmp_path / "prometheus").mkdir()
    prom = Prometheus(tmp_path / "prometheus", [s.port for s in servers])
    proxy: Optional[HAProxy] = None
    load: Optional[Load] = None
    try:
        assert wait_until(lambda: prom.value('count(up{job="pyrt"} == 1)') == 3, 20), \
            prom.query("up")
        proxy = HAProxy(tmp_path / "haproxy", [s.port for s in servers])
        victim_name = "s2"

        load = Load(proxy.port)
        load.start()
        time.sleep(max(0.0, load.t0 + SIGTERM_AT - time.monotonic()))
        # SIGTERM while both of the victim's workers are busy, so that there is work in
        # flight to finish (bounded: the load goes on for DURATION - SIGTERM_AT more).
        gauge = wait_until(lambda: (lambda n: n if n >= WORKERS else 0)(busy(victim)),
                           2.0, step=0.01) or busy(victim)

        sig_wall = time.time()
        sig_at = time.monotonic()
        victim.send_signal(signal.SIGTERM)

        # /__ready turns 503 at once; HAProxy sees it and stops sending, within the delay.
        assert wait_until(lambda: ready_status(victim) == 503, 0.5, step=0.01), \
            f"/__ready of the victim is {ready_status(victim)} after SIGTERM"
        assert wait_until(lambda: proxy is not None and proxy.stats()[victim_name][
            "status"].startswith("DOWN"), DRAIN_DELAY, step=0.02), \
            f"HAProxy did not take the victim out within {DRAIN_DELAY} s: {proxy._states()}"
        down_s = time.monotonic() - sig_at

        # Its final counter, read while it still serves (the drain delay): nothing is open
        # to it from HAProxy and nothing runs or waits in it.
        def settled() -> bool:
            assert proxy is not None
            return proxy.stats()[victim_name]["scur"] == "0" and busy(victim) == 0
        try:
            assert wait_until(settled, DRAIN_DELAY, step=0.02), "the victim never went idle"
            victim_final = executions(metrics(victim))
        except (OSError, http.client.HTTPException) as exc:
            pytest.fail(f"the victim stopped serving before its final counter could be read "
                        f"({exc!r}); {time.monotonic() - sig_at:.2f} s after SIGTERM")
        settled_s = time.monotonic() - sig_at

        rc = victim.wait(EXIT_BOUND + 10)
        exit_s = time.monotonic() - sig_at
        assert rc == 0, f"the victim exited with {rc}\n{victim.log_tail()}"
        assert exit_s <= EXIT_BOUND, f"the victim took {exit_s:.2f} s to exit"
        assert exit_s >= DRAIN_DELAY, f"the victim exited after {exit_s:.2f} s"

        answers = load.join(DURATION + REQUEST_TIMEOUT)
        load = None
        bad = [a for a in answers if a.status != 200]
        assert not bad, (f"{len(bad)} of {TOTAL} not 200: "
                         + "; ".join(f"#{a.seq} {a.status} {a.error}" for a in bad[:10])
                         + "\n" + proxy.log_tail())
        assert len(answers) == TOTAL
        served = {pid: sum(1 for a in answers if a.master == pid) for pid in instance}
        assert sum(served.values()) == TOTAL, served

        # What was in flight at the signal (from the victim's access log), all answered.
        status_of = {f"drain-{a.seq}": a.status for a in answers}
        accesses = post_accesses(victim)
        in_flight = [a for a in accesses if a.start < sig_wall <= a.end]
        answered = sum(1 for a in in_flight if a.status == 200 and status_of[a.req_id] == 200)
        while_draining = [a for a in accesses if a.start >= sig_wall]
        assert answered == len(in_flight), in_flight
        if gauge >= WORKERS:
            assert in_flight, f"the gauge said {gauge} just before SIGTERM"
        assert len(accesses) == victim_final == served[victim.pid], \
            (len(accesses), victim_final, served)

        # Prometheus: the survivors' sum, once the victim's series are stale and the last
        # requests scraped; plus the victim's final counter.
        victim_instance = instance[victim.pid]

        def prom_sum() -> Optional[float]:
            if prom.value(f'up{{instance="{victim_instance}"}}') != 0:
                return None
            total = prom.value("sum(pyrt_executions_total)")
            return total if total == TOTAL - victim_final else None
        survivors = wait_until(prom_sum, 20, step=0.2)
        assert survivors is not None, (
            f"Prometheus: sum(pyrt_executions_total) = "
            f"{prom.value('sum(pyrt_executions_total)')}, up of the victim = "
            f"{prom.value(f'up{{instance={victim_instance!r}}}')}; "
            f"expected {TOTAL - victim_final} (+ {victim_final} from the victim)")
        counted = int(survivors) + victim_final
        assert counted == TOTAL
        for pid, name in instance.items():
            if pid != victim.pid:
                assert prom.value(f'sum(pyrt_executions_total{{instance="{name}"}})') \
                    == served[pid], name
        # Prometheus scraped the victim too, and never saw more than its final count.
        assert prom.value(f'max_over_time(up{{instance="{victim_instance}"}}[5m])') == 1
        victim_last = prom.value(
            f'sum(max_over_time(pyrt_executions_total{{instance="{victim_instance}"}}[5m]))')
        assert victim_last is not None and 0 < victim_last <= victim_final, victim_last
    finally:
        if load is not None:
            load.abandon()
        if proxy is not None:
            proxy.stop()
        prom.stop()

    print(f"\ndrain: in flight at SIGTERM {len(in_flight)} (running + queued gauge just before: {gauge}), "
          f"answered {answered}; exit {exit_s:.2f} s (--drain-delay {DRAIN_DELAY:g}); "
          f"HAProxy DOWN after {down_s:.2f} s, idle after {settled_s:.2f} s, "
          f"{len(while_draining)} sent to it while draining; total requests {TOTAL}, "
          f"non-2xx {len(bad)}; executions counted {counted} "
          f"(Prometheus {int(survivors)} + victim {victim_final}, "
          f"its last scrape {int(victim_last)})")
