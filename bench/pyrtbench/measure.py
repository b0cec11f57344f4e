"""The measurements: cold start and memory per worker, throughput rounds, the I/O-bound
function, fairness under load, payload scaling, the v5 logs folder and runaway code
(Bench), with the summaries they are kept as."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional

from pyrtbench.config import (IO_HEADER, IO_SERVERS, IO_V5_PATH, IO_WAIT_MS, STALL_MS,
                              UPSTREAM_ANSWER, V5_ANSWER, V5_BODY, V5_PATH, log, v5_headers)
from pyrtbench.httpclient import Req, http_request
from pyrtbench.procs import cpu_seconds, pss_kib
from pyrtbench.servers import Lab, Server, wait_answer
from pyrtbench.settings import Settings, size_label
from pyrtbench.wrk import WrkBackground, WrkReq, run_wrk, ss_lastrcv


@dataclass(frozen=True)
class Workload:
    """A server's request (for the checks and the fresh clients, and for wrk) and the
    function's answer to it."""
    req: Req
    wrk: WrkReq
    answer: dict[str, str]


class Bench:
    def __init__(self, settings: Settings, lab: Lab, pyrt_bin: Path) -> None:
        self.s = settings
        self.lab = lab
        self.pyrt_bin = pyrt_bin
        self.results: dict[str, dict[str, Any]] = {n: {"notes": []} for n in settings.servers}
        self.bodies: dict[str, Path] = {}
        code = lab.code
        self.upstream = Req(json.dumps({
            "path": str(code / "upstream"), "file": "index.py",
            "env": {"ENV1": "Hello World!"}, "payload": "Hello World! 2",
            "timeout": 60, "headers": {"test": "test1"}}).encode())
        v5 = Req(V5_BODY, V5_PATH, v5_headers(settings.v5_logging))
        v5_headers_file = lab.work / "headers-v5.txt"
        v5_headers_file.write_text("".join(f"{k}: {v}\n" for k, v in v5.headers))
        io_seed = Req(json.dumps({
            "path": str(code / "io"), "file": "index.py",
            "env": {"ENV1": "Hello World!"}, "payload": "Hello World! 2",
            "timeout": 60, "headers": {"test": "test1", IO_HEADER: str(IO_WAIT_MS)}}).encode())
        io_v5 = Req(V5_BODY, IO_V5_PATH, v5.headers)
        self.workloads = {
            "seed": Workload(self.upstream,
                             WrkReq(self.body_file("upstream", self.upstream.body)),
                             UPSTREAM_ANSWER),
            "v5": Workload(v5, WrkReq(self.body_file("v5", v5.body), v5_headers_file, V5_PATH),
                           V5_ANSWER),
            "io-seed": Workload(io_seed, WrkReq(self.body_file("io", io_seed.body)),
                                UPSTREAM_ANSWER),
            "io-v5": Workload(io_v5, WrkReq(self.bodies["v5"], v5_headers_file, IO_V5_PATH),
                              V5_ANSWER),
        }

    def wl(self, name: str) -> Workload:
        return self.workloads[self.lab.specs[name].workload]

    def io_wl(self, name: str) -> Workload:
        """The I/O-bound workload in the server's contract."""
        return self.workloads["io-" + self.lab.specs[name].workload]

    def body_file(self, name: str, data: bytes) -> Path:
        path = self.lab.work / f"body-{name}.json"
        path.write_bytes(data)
        self.bodies[name] = path
        return path

    def note(self, name: str, text: str) -> None:
        self.results[name]["notes"].append(text)
        log(f"note: {name}: {text}")

    def log_notes(self, name: str, srv: Server, prefix: str,
                  expect_timeouts: bool = False) -> None:
        for line in self.lab.scan_log(srv, expect_timeouts):
            self.note(name, f"{prefix}log: {line}")

    def good_answer(self, name: str,
                    workload: Optional[Workload] = None) -> Callable[[int, bytes], bool]:
        """The ceiling answers anything; the others must give their function's answer (to
        the server's main workload unless another is given)."""
        if not self.lab.specs[name].python:
            return lambda status, data: status == 200
        answer = (workload or self.wl(name)).answer

        def check(status: int, data: bytes) -> bool:
            if status != 200:
                return False
            try:
                return bool(json.loads(data) == answer)
            except ValueError:
                return False
        return check

    def seed_python_servers(self) -> list[str]:
        """The servers the seed-only phases (payload scaling, runaway code) apply to."""
        return [n for n in self.s.servers
                if self.lab.specs[n].python and self.lab.specs[n].workload == "seed"]

    # ---- cold start and memory per worker
    def cold_start(self) -> None:
        times: dict[str, list[float]] = {n: [] for n in self.s.servers}
        for r in range(self.s.cold_runs):
            for name in self.s.servers:
                if "failed" in self.results[name]:
                    continue
                srv = self.lab.start(name, self.s.workers, tag=f"-cold{r}")
                try:
                    secs = wait_answer(srv, self.wl(name).req, self.good_answer(name))
                    times[name].append(secs * 1000)
                    if r == self.s.cold_runs - 1:
                        run_wrk(srv.port, 8, self.s.warmup, self.wl(name).wrk)
                        time.sleep(0.3)
                        self.results[name]["pss_fresh_kib"] = {
                            str(self.s.workers): pss_kib(srv.tree())}
                except RuntimeError as exc:
                    self.results[name]["failed"] = str(exc)
                    self.note(name, f"failed to start: {exc}")
                finally:
                    self.lab.stop(srv)
                    self.log_notes(name, srv, "cold start: ")
        for name, ts in times.items():
            if ts:
                self.results[name]["cold_start_ms"] = summary(ts)
                log(f"cold start {name}: {statistics.median(ts):.0f} ms")
        n2, n4 = self.s.workers, self.s.workers + self.s.extra_workers
        for name in self.s.servers:
            if "failed" in self.results[name] or not self.lab.specs[name].multi_worker:
                continue
            if self.s.extra_workers <= 0:
                continue
            srv = self.lab.start(name, n4, tag=f"-w{n4}")
            try:
                wait_answer(srv, self.wl(name).req, self.good_answer(name))
                run_wrk(srv.port, 2 * n4, self.s.warmup, self.wl(name).wrk)
                time.sleep(0.3)
                fresh = self.results[name].setdefault("pss_fresh_kib", {})
                fresh[str(n4)] = pss_kib(srv.tree())
                if str(n2) in fresh:
                    per = (fresh[str(n4)] - fresh[str(n2)]) / (n4 - n2)
                    self.results[name]["pss_per_worker_kib"] = per
                    log(f"PSS {name}: {fresh[str(n2)] / 1024:.1f} MiB with {n2}, "
                        f"+{per / 1024:.2f} MiB per extra worker")
            except RuntimeError as exc:
                self.note(name, f"{n4}-worker instance: {exc}")
            finally:
                self.lab.stop(srv)
                self.log_notes(name, srv, f"{n4}-worker instance: ")

    # ---- throughput, fairness, memory after load, payload scaling
    def main_instances(self) -> dict[str, Server]:
        servers: dict[str, Server] = {}
        for name in self.s.servers:
            if "failed" in self.results[name]:
                continue
            srv = self.lab.start(name, self.s.workers)
            try:
                wait_answer(srv, self.wl(name).req, self.good_answer(name))
                srv.mark("warm-up")
                run_wrk(srv.port, 16, self.s.warmup, self.wl(name).wrk)
                servers[name] = srv
                self.results[name]["command"] = srv.command()
                self.lab.commands[name] = srv.command()
            except RuntimeError as exc:
                self.results[name]["failed"] = str(exc)
                self.note(name, f"failed to start: {exc}")
                self.lab.stop(srv)
        return servers

    def throughput(self, servers: dict[str, Server]) -> None:
        for srv in servers.values():
            srv.mark("throughput")
        raw = self.rounds(servers, self.s.concurrency, self.wl, "")
        for name in servers:
            self.results[name]["throughput"] = self.summarise(name, raw[name], "")

    def io_bound(self, servers: dict[str, Server]) -> None:
        """The I/O-bound function (awaits IO_WAIT_MS, then answers) on the servers that run
        it, in interleaved rounds as the throughput; each is first checked with one request
        (on pyrt that first execution runs alone, and tells it main is a coroutine) and
        warmed up."""
        io = {}
        for name, srv in servers.items():
            if name not in IO_SERVERS:
                continue
            srv.mark("I/O-bound")
            wl = self.io_wl(name)
            try:
                check_once(srv, wl.req, self.good_answer(name, wl))
                run_wrk(srv.port, 16, self.s.warmup, wl.wrk)
                io[name] = srv
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                self.note(name, f"I/O-bound function: {exc}")
        raw = self.rounds(io, self.s.io_concurrency, self.io_wl, "I/O-bound ")
        for name in io:
            self.results[name]["io"] = self.summarise(name, raw[name], "I/O-bound ")

    def rounds(self, servers: dict[str, Server], concurrency: list[int],
               workload: Callable[[str], Workload], what: str
               ) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """wrk runs of every server at every concurrency, interleaved (run 1 of each, then
        run 2, ...) with the order rotated, so drift in the machine spreads over all."""
        names = list(servers)
        raw: dict[str, dict[str, list[dict[str, Any]]]] = {
            n: {str(c): [] for c in concurrency} for n in names}
        for r in range(self.s.runs if names else 0):
            for c in concurrency:
                for name in names[r % len(names):] + names[:r % len(names)]:
                    res = self.timed_wrk(name, servers[name], c, workload(name).wrk, what)
                    if res is None:
                        continue
                    raw[name][str(c)].append(res)
                    log(f"{what}run {r + 1}/{self.s.runs} c={c} {name}: {res['rps']:.0f} "
                        f"req/s, p99 {res['latency_us']['p99'] / 1000:.2f} ms, "
                        f"{res['error_count']} errors")
        return raw

    def timed_wrk(self, name: str, srv: Server, conns: int, wreq: WrkReq,
                  what: str) -> Optional[dict[str, Any]]:
        """One wrk run with the CPU its server's process tree spent meanwhile; None (and a
        note) when wrk failed."""
        cpu0 = cpu_seconds(srv.tree())
        try:
            res = run_wrk(srv.port, conns, self.s.duration, wreq)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            self.note(name, f"{what}wrk c={conns}: {exc}")
            return None
        res["cpu_s"] = cpu_seconds(srv.tree()) - cpu0
        res["cpu_us_per_req"] = (res["cpu_s"] * 1e6 / res["requests"]
                                 if res["requests"] else None)
        return res

    def summarise(self, name: str, raw: dict[str, list[dict[str, Any]]],
                  what: str) -> dict[str, Any]:
        """Per concurrency: the median run and the spread, median percentiles, errors
        (noted when there are any)."""
        out: dict[str, Any] = {}
        for ck, runs in raw.items():
            if not runs:
                continue
            out[ck] = {
                "rps": summary([x["rps"] for x in runs]),
                "p50_ms": statistics.median(x["latency_us"]["p50"] / 1000 for x in runs),
                "p99_ms": statistics.median(x["latency_us"]["p99"] / 1000 for x in runs),
                "mean_ms": statistics.median(x["latency_us"]["mean"] / 1000 for x in runs),
                "cpu_us_per_req": median_or_none([x["cpu_us_per_req"] for x in runs]),
                "errors": sum(x["error_count"] for x in runs),
                "errors_by_kind": {k: sum(x["errors"][k] for x in runs)
                                   for k in runs[0]["errors"]},
                "requests": sum(x["requests"] for x in runs),
                "runs": runs,
            }
            if out[ck]["errors"]:
                self.note(name, f"{what}c={ck}: {out[ck]['errors']} wrk errors "
                                f"{out[ck]['errors_by_kind']}")
        return out

    def fairness(self, name: str, srv: Server) -> None:
        conns, duration = self.s.fairness_conns, self.s.fairness_duration
        fresh_ports: set[int] = set()
        max_rcv: dict[int, int] = {}
        fresh: list[float] = []
        fresh_fail: list[str] = []
        srv.mark("fairness")
        wrk = WrkBackground(srv.port, conns, duration, self.wl(name).wrk)
        stop_at = wrk.end - 0.3
        time.sleep(min(1.0, duration / 3))

        def sampler() -> None:
            while time.monotonic() < stop_at:
                try:
                    for peer, ms in ss_lastrcv(srv.port).items():
                        max_rcv[peer] = max(ms, max_rcv.get(peer, 0))
                except (OSError, subprocess.SubprocessError):
                    pass
                time.sleep(0.1)
        th = threading.Thread(target=sampler, daemon=True)
        has_ss = shutil.which("ss") is not None
        if has_ss:
            th.start()
        while time.monotonic() < stop_at - 0.2:
            try:
                status, _, secs = http_request(srv.port, self.wl(name).req, timeout=5.0,
                                               on_connect=fresh_ports.add)
                if status == 200:
                    fresh.append(secs * 1000)
                else:
                    fresh_fail.append(f"status {status}")
            except (OSError, ValueError) as exc:
                fresh_fail.append(str(exc) or type(exc).__name__)
            time.sleep(0.25)
        if has_ss:
            th.join()
        res = wrk.join()
        wrk_rcv = {p: ms for p, ms in max_rcv.items() if p not in fresh_ports}
        stalled = sorted(ms for ms in wrk_rcv.values() if ms > STALL_MS)
        self.results[name]["fairness"] = {
            "conns": conns, "duration_s": duration, "rps": res["rps"],
            "wrk_errors": res["error_count"],
            "fresh_ms": summary(fresh) if fresh else None,
            "fresh_failed": len(fresh_fail), "fresh_fail_reasons": fresh_fail[:3],
            "connections_seen": len(wrk_rcv), "stalled": len(stalled) if has_ss else None,
            "max_lastrcv_ms": max(wrk_rcv.values()) if wrk_rcv else None,
        }
        log(f"fairness {name}: fresh client median "
            f"{statistics.median(fresh) if fresh else float('nan'):.1f} ms "
            f"max {max(fresh) if fresh else float('nan'):.1f} ms, {len(fresh_fail)} failed; "
            f"{len(stalled)}/{len(wrk_rcv)} connections stalled > {STALL_MS} ms")

    def payload(self, name: str, srv: Server) -> None:
        out: dict[str, Any] = {}
        srv.mark("payload scaling")
        for size in self.s.payload_sizes:
            key = f"echo-{size}"
            if key not in self.bodies:
                body = json.dumps({"path": str(self.lab.code / "echo"), "file": "index.py",
                                   "payload": "x" * size, "timeout": 60}).encode()
                self.body_file(key, body)
            check = "ok"
            try:
                status, data, _ = http_request(srv.port, Req(self.bodies[key].read_bytes()),
                                               60.0)
                if status != 200 or len(data) < size:
                    check = f"status {status}, {len(data)} bytes: {data[:120]!r}"
            except (OSError, ValueError) as exc:
                check = str(exc)
            if check != "ok":
                self.note(name, f"echo {size_label(size)}: {check}")
                out[str(size)] = {"check": check}
                continue
            try:
                res = run_wrk(srv.port, self.s.payload_conns, self.s.payload_duration,
                              WrkReq(self.bodies[key]))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                self.note(name, f"echo {size_label(size)} wrk: {exc}")
                continue
            out[str(size)] = {"check": check, "rps": res["rps"],
                              "p99_ms": res["latency_us"]["p99"] / 1000,
                              "errors": res["error_count"]}
            log(f"payload {name} {size_label(size)}: {res['rps']:.0f} req/s, "
                f"p99 {res['latency_us']['p99'] / 1000:.1f} ms, {res['error_count']} errors")
        self.results[name]["payload"] = out

    def v5_logs(self, name: str, srv: Server) -> None:
        """What the main instance left in its logs folder (nobody deletes the files, as the
        executor would): with logging enabled and a fixed log id, two files that stay
        small; more files, or growth, is worth a look."""
        files = [f for f in (srv.inst_dir / "logs").iterdir() if f.is_file()]
        usage = {"files": len(files), "bytes": sum(f.stat().st_size for f in files),
                 "names": sorted(f.name for f in files)[:6],
                 "logging": "enabled" if self.s.v5_logging else "disabled"}
        self.results[name]["v5_logs"] = usage
        log(f"v5 logs {name}: {usage['files']} files, {usage['bytes']} bytes")
        if len(files) > (2 if self.s.v5_logging else 0):
            self.note(name, f"logs folder after the run: {usage['files']} files "
                            f"({usage['bytes']} bytes), expected "
                            f"{2 if self.s.v5_logging else 0}")

    # ---- runaway code
    def runaway(self, name: str) -> None:
        is_pyrt = name == "pyrt"
        extra = ("--log-level", "debug") if is_pyrt else ()
        srv = self.lab.start(name, self.s.workers, extra=extra, tag="-runaway")
        deadline = self.s.runaway_timeout
        wait = deadline + (3.0 if not is_pyrt else 2.0)
        spin = Req(json.dumps({"path": str(self.lab.code / "spin"), "file": "index.py",
                               "timeout": deadline}).encode())
        runs: list[dict[str, Any]] = []
        try:
            wait_answer(srv, self.wl(name).req, self.good_answer(name))
            srv.mark("runaway")
            for _ in range(self.s.runaway_runs if is_pyrt else 1):
                runs.append(self._runaway_once(srv, spin, wait))
                time.sleep(0.3)
        except RuntimeError as exc:
            self.note(name, f"runaway: {exc}")
        finally:
            if is_pyrt:
                self.lab.stop(srv)
            else:
                self.lab.stop(srv, grace=3.0, hung=True)
            self.log_notes(name, srv, "runaway instance: ", expect_timeouts=True)
        if not runs:
            return
        out: dict[str, Any] = {"timeout_s": deadline, "runs": runs}
        late = [r["late_ms"] for r in runs if r["answered"]]
        out["answered"] = sum(1 for r in runs if r["answered"])
        out["late_ms"] = summary(late) if late else None
        out["normal_ok"] = sum(r["normal_ok"] for r in runs)
        out["normal_failed"] = sum(r["normal_failed"] for r in runs)
        out["normal_max_ms"] = max(r["normal_max_ms"] for r in runs)
        if is_pyrt:
            ready = kill_to_ready_ms(srv.log_path)
            out["kill_to_ready_ms"] = summary(ready) if ready else None
        self.results[name]["runaway"] = out
        log(f"runaway {name}: answered {out['answered']}/{len(runs)}, late "
            f"{out['late_ms']}, normal ok {out['normal_ok']} failed {out['normal_failed']}, "
            f"kill->ready {out.get('kill_to_ready_ms')}")

    def _runaway_once(self, srv: Server, spin: Req, wait: float) -> dict[str, Any]:
        answer: dict[str, Any] = {}

        def send_spin() -> None:
            start = time.monotonic()
            try:
                status, data, _ = http_request(srv.port, spin, timeout=wait)
                answer.update(status=status, body=data[:200].decode(errors="replace"))
            except (OSError, ValueError) as exc:
                answer.update(status=None, body=str(exc) or type(exc).__name__)
            answer["secs"] = time.monotonic() - start
        th = threading.Thread(target=send_spin, daemon=True)
        th.start()
        ok = failed = 0
        max_ms = 0.0
        reasons: list[str] = []
        end: Optional[float] = None
        while end is None or time.monotonic() < end:
            try:
                status, data, secs = http_request(srv.port, self.upstream, timeout=1.0)
                if status == 200:
                    ok += 1
                    max_ms = max(max_ms, secs * 1000)
                else:
                    failed += 1
                    reasons.append(f"status {status}")
            except (OSError, ValueError) as exc:
                failed += 1
                reasons.append(str(exc) or type(exc).__name__)
            time.sleep(0.02)
            if end is None and not th.is_alive():
                end = time.monotonic() + 0.5
        th.join()
        answered = answer.get("status") is not None
        late = (answer["secs"] - self.s.runaway_timeout) * 1000
        return {"answered": answered, "status": answer.get("status"),
                "answer": answer.get("body"), "secs": answer["secs"],
                "late_ms": late if answered else None,
                "normal_ok": ok, "normal_failed": failed, "normal_max_ms": max_ms,
                "normal_fail_reasons": reasons[:3]}

    # ---- the whole run
    def run(self) -> None:
        for name in self.s.servers:
            self.results[name]["python"] = self.lab.specs[name].python
            self.results[name]["label"] = self.lab.specs[name].label
            if self.lab.specs[name].note:
                self.results[name]["setting_note"] = self.lab.specs[name].note
        log("phase 1: cold start and memory per worker")
        self.cold_start()
        log("phase 2: main instances")
        servers = self.main_instances()
        try:
            log("phase 3: throughput rounds")
            self.throughput(servers)
            if self.s.io_concurrency:
                log(f"phase 3b: I/O-bound function (awaits {IO_WAIT_MS} ms)")
                self.io_bound(servers)
            log("phase 4: fairness under load, memory after load")
            for name, srv in servers.items():
                self.fairness(name, srv)
                time.sleep(0.3)
                self.results[name]["pss_after_load_kib"] = pss_kib(srv.tree())
                self.results[name]["processes"] = len(srv.tree())
            log("phase 5: payload scaling")
            for name, srv in servers.items():
                if name in self.seed_python_servers() and self.s.payload_sizes:
                    self.payload(name, srv)
        finally:
            for name, srv in servers.items():
                srv.mark("shutdown")
                self.lab.stop(srv)
                self.log_notes(name, srv, "")
                if srv.spec.workload == "v5":
                    self.v5_logs(name, srv)
        log("phase 6: runaway code")
        try:
            for name in self.seed_python_servers():
                if "failed" not in self.results[name] and self.s.runaway_runs > 0:
                    self.runaway(name)
        finally:
            for name, notes in self.lab.notes.items():
                for text in notes:
                    self.note(name, text)


def check_once(srv: Server, req: Req, check: Callable[[int, bytes], bool]) -> None:
    """One request on a fresh connection; RuntimeError unless its answer passes check."""
    try:
        status, data, _ = http_request(srv.port, req, timeout=10.0)
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"check request failed: {exc}") from exc
    if not check(status, data):
        raise RuntimeError(f"unexpected answer: status {status}: {data[:200]!r}")


def kill_to_ready_ms(log_path: Path) -> list[float]:
    """From pyrt's debug log: each "killing worker" line to the next "worker N ready"."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for i, line in enumerate(lines):
        if "killing worker" in line:
            for later in lines[i + 1:]:
                if re.search(r"worker \d+ ready$", later):
                    out.append((stamp(later) - stamp(line)) * 1000)
                    break
    return out


def stamp(line: str) -> float:
    return datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def median_or_none(values: list[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None
