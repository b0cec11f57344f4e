"""The pool survives its processes dying: crashes beside an execution, a module that
kills its worker at import (back-off, immediate answers), the zygote and the workers
killed from outside. After each scenario the master has one zygote and exactly --workers
workers again, and nothing else."""

from __future__ import annotations

import http.client
import os
import re
import resource
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import (KEY, PYRT, Parallel, Server, ServerFactory, clean_env, free_port, get,
                      post, pool_processes, wait_pool, wait_until, write_file)

SANITIZED = bool(os.environ.get("PYRT_SANITIZER"))
HEALTH_OK = b'{"status": "ok"}'


def hello_ok(server: Server, n: int = 5) -> None:
    for i in range(n):
        status, _, body = server.call_raw("hello")
        assert (status, body) == (200, b"hello"), f"request {i}: {status} {body[:300]!r}"


def health(server: Server) -> int:
    """Status of /__health; 0 if the server did not answer at all."""
    try:
        return get(server.port, "/__health", timeout=2.0)[0]
    except (OSError, http.client.HTTPException):
        return 0


# --------------------------------------------------------------------------- crash beside

@pytest.mark.parametrize("how", [
    "exit",
    pytest.param("segv", marks=pytest.mark.skipif(
        SANITIZED, reason="ASan catches SIGSEGV itself: the worker exits with ASan's status, "
        "not signal 11")),
])
def test_crash_does_not_disturb_execution_in_flight(server_factory: ServerFactory,
                                                    how: str) -> None:
    srv = server_factory(["--workers", "2"])
    wait_pool(srv, 2)
    hello_ok(srv, 2)
    par = Parallel()
    start = time.monotonic()
    par.start(lambda: post(srv.port, {"path": str(srv.fn("sleep")),
                                      "payload": {"sleep": 1.5, "tag": "inflight"}},
                           timeout=15))
    time.sleep(0.3)
    status, _, body = srv.call("crash", {"how": how})
    crash_answered = time.monotonic() - start
    assert status == 500, body
    expect = "status 3" if how == "exit" else "signal 11"
    assert expect in body["message"], body
    assert crash_answered < 1.4, f"the crash was answered after {crash_answered:.2f} s"
    inflight = par.join(10)[0]
    elapsed = time.monotonic() - start
    assert inflight[0] == 200, inflight
    assert b'"tag": "inflight"' in inflight[2], inflight
    assert 1.4 <= elapsed < 3.0, f"in-flight 1.5 s sleep answered after {elapsed:.2f} s"
    hello_ok(srv)
    wait_pool(srv, 2)


# --------------------------------------------------------------------------- back-off

EXIT_AT_IMPORT = "import os\nos._exit(1)\n\n\ndef main(req, res):\n    return res.send('no')\n"
FIXED = "def main(req, res):\n    return res.send('fixed now')\n"
DEATH_RE = re.compile(r"worker \d+: worker exited with status 1\b")
NEXT_START_RE = re.compile(r"next start in (\d+) ms")


def test_module_killing_worker_at_import_backs_off(server_factory: ServerFactory) -> None:
    srv = server_factory(["--workers", "1", "--default-timeout", "10"])
    name = "exit_at_import_" + uuid.uuid4().hex[:8]
    write_file(srv.fn(name) / "index.py", EXIT_AT_IMPORT)
    times = []
    for i in range(8):
        start = time.monotonic()
        status, _, body = srv.call(name, timeout=10)
        elapsed = time.monotonic() - start
        times.append(round(elapsed, 3))
        assert status == 500, (i, body)
        assert body["code"] == 500 and "status 1" in body["message"], (i, body)
        assert elapsed < 2.0, f"request {i} answered after {elapsed:.2f} s: {times}"
    # Keep asking for ~3 s: the replacements back off exponentially, so only a few more
    # workers die (without a back-off: one per request), every answer is still at once,
    # and while no worker is alive /__health says 503.
    healths = []
    n_requests = 8
    phase_end = time.monotonic() + 3.0
    while time.monotonic() < phase_end:
        start = time.monotonic()
        status, _, body = srv.call(name, timeout=10)
        elapsed = time.monotonic() - start
        healths.append(health(srv))
        n_requests += 1
        assert status == 500 and "status 1" in body["message"], body
        assert elapsed < 2.0, f"request {n_requests} answered after {elapsed:.2f} s"
        time.sleep(0.1)
    backoff = srv.wait_log(lambda ln: ln.role == "master" and "workers keep failing" in ln.msg
                           and "next start in" in ln.msg)
    assert backoff, f"no back-off line for workers dying at import; tail:\n{srv.log_tail(20)}"
    delays = [int(m[1]) for m in (NEXT_START_RE.search(ln.msg) for ln in backoff) if m]
    assert delays == sorted(delays), f"back-off delays not growing: {delays}"
    assert max(delays) >= 400 and max(delays) <= 5000, f"back-off delays: {delays}"
    deaths = [ln for ln in srv.log_lines() if DEATH_RE.search(ln.msg)]
    # Each death needs a request that imports the module; during a back-off requests are
    # answered without starting a worker.
    assert 3 <= len(deaths) <= 12, (f"{len(deaths)} worker deaths for {n_requests} "
                                    f"requests in ~3.5 s; back-off delays {delays}")
    assert 503 in healths, f"/__health during the back-off with no live worker: {healths}"
    # No spinning meanwhile: without requests no worker dies.
    time.sleep(0.5)
    later = [ln for ln in srv.log_lines() if DEATH_RE.search(ln.msg)]
    assert len(later) == len(deaths), f"workers kept dying without requests: {len(later)}"

    write_file(srv.fn(name) / "index.py", FIXED)
    start = time.monotonic()

    def fixed() -> bool:
        status, _, body = srv.call_raw(name)
        return status == 200 and body == b"fixed now"
    assert wait_until(fixed, 10.0, step=0.2), \
        f"fixed module still failing after 10 s; tail:\n{srv.log_tail(10)}"
    assert time.monotonic() - start < 10.0
    hello_ok(srv)
    wait_pool(srv, 1)
    assert health(srv) == 200


def test_module_killing_worker_on_every_call(server_factory: ServerFactory) -> None:
    # Workers that imported fine but die on every call: each request is a 500 at once,
    # and the server serves other functions in between.
    srv = server_factory(["--workers", "1"])
    times = []
    for i in range(8):
        start = time.monotonic()
        status, _, body = srv.call("crash", {"how": "exit"})
        times.append(round(time.monotonic() - start, 3))
        assert status == 500 and "status 3" in body["message"], (i, body)
    assert max(times) < 2.0, times
    assert wait_until(lambda: srv.call_raw("hello")[:3:2] == (200, b"hello"), 8.0, 0.2), \
        f"hello not served within 8 s after 8 crashes; tail:\n{srv.log_tail(10)}"
    wait_pool(srv, 1)


# --------------------------------------------------------------------------- killed from outside

def test_zygote_and_workers_killed_at_once(server_factory: ServerFactory) -> None:
    srv = server_factory(["--workers", "2"])
    (old_zygote,), old_workers = wait_pool(srv, 2)
    hello_ok(srv, 4)
    for pid in [old_zygote, *old_workers]:
        os.kill(pid, signal.SIGKILL)
    seen = []
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        code = health(srv)
        seen.append(code)
        assert code in (200, 503), f"/__health answered {code} (0: no answer): {seen}"
        z, w, _ = pool_processes(srv)
        if code == 200 and z and z[0] != old_zygote and len(w) == 2 \
                and not set(w) & set(old_workers):
            break
        time.sleep(0.05)
    assert seen[-1] == 200, f"/__health not back to 200 within 5 s: {seen[-20:]}"
    (new_zygote,), new_workers = wait_pool(srv, 2)
    assert new_zygote != old_zygote
    assert not set(new_workers) & set(old_workers), (old_workers, new_workers)
    hello_ok(srv, 10)
    status, _, body = srv.call("crash", {"how": "none"})
    assert status == 200 and body["pid"] in new_workers, body


def test_zygote_killed_alone(server_factory: ServerFactory) -> None:
    srv = server_factory(["--workers", "2"])
    (old_zygote,), workers = wait_pool(srv, 2)
    hello_ok(srv, 2)
    os.kill(old_zygote, signal.SIGKILL)
    seen = []
    new_zygote = None
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        seen.append(health(srv))
        status, _, body = srv.call_raw("hello")
        assert (status, body) == (200, b"hello"), f"with the zygote dead: {status} {body!r}"
        z, _, _ = pool_processes(srv)
        if z and z[0] != old_zygote:
            new_zygote = z[0]
            break
        time.sleep(0.05)
    assert all(code == 200 for code in seen), \
        f"/__health not 200 while workers were alive and the zygote dead: {seen}"
    assert new_zygote is not None, f"no new zygote within 5 s; tail:\n{srv.log_tail(10)}"
    (zygote,), workers_now = wait_pool(srv, 2)
    assert zygote == new_zygote
    # The new zygote makes the replacements: kill a worker, the pool comes back.
    os.kill(workers_now[0], signal.SIGKILL)
    assert wait_until(lambda: (lambda w: len(w) == 2 and workers_now[0] not in w)(
        pool_processes(srv)[1]), 5.0, 0.1), \
        f"killed worker not replaced by the new zygote; tail:\n{srv.log_tail(10)}"
    hello_ok(srv, 10)
    wait_pool(srv, 2)


def test_no_worker_can_start_health_503(server_factory: ServerFactory) -> None:
    # --preload: the zygote imports the entry point. Broken at import, no zygote and so
    # no worker can start: /__health answers 503 (and pyrt does not spin); fixed, it
    # serves again.
    srv = server_factory(["--workers", "1", "--preload", "--default-timeout", "3"])
    entry = srv.code_dir / "index.py"
    (old_zygote,), (worker,) = wait_pool(srv, 1)
    hello_ok(srv, 2)
    write_file(entry, EXIT_AT_IMPORT + "# broken\n")
    os.kill(old_zygote, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)
    assert wait_until(lambda: health(srv) == 503, 5.0, 0.1), \
        f"/__health not 503 with an entry point that exits at import; tail:\n{srv.log_tail(10)}"
    start = time.monotonic()
    status, _, body = post(srv.port, {}, timeout=15)  # the entry point
    elapsed = time.monotonic() - start
    assert status == 500 and b"zygote exited with status 1" in body, (status, body)
    assert elapsed < 2.0, f"answered after {elapsed:.2f} s with no zygote able to start"
    time.sleep(2.0)
    assert health(srv) == 503
    starts = [ln for ln in srv.log_lines() if re.search(r"zygote \d+ (ready|started)", ln.msg)
              or "zygote" in ln.msg and "exited" in ln.msg]
    assert len(starts) < 30, f"{len(starts)} zygote lines in ~3 s: spinning"
    write_file(entry, "def main(req, res):\n    return res.send('root fixed')\n")
    assert wait_until(lambda: health(srv) == 200, 12.0, 0.2), \
        f"/__health not 200 within 12 s of the fix; tail:\n{srv.log_tail(10)}"
    assert wait_until(lambda: post(srv.port, {})[2] == b"root fixed", 5.0, 0.2)
    hello_ok(srv)
    wait_pool(srv, 1)


def test_no_fds_for_a_worker_backs_off(tmp_path: Path) -> None:
    """With no file descriptors left for a worker's channel, pipes and gate, pyrt waits
    longer and longer between tries instead of spinning, and still stops on SIGTERM."""
    code = tmp_path / "code"
    code.mkdir()
    write_file(code / "index.py", "def main(req, res):\n    return res.send('hi')\n")
    os.chmod(tmp_path, 0o755)  # each worker runs as a uid of its own
    limit = 16  # enough to listen and start the zygote; a worker needs 7 more
    proc = subprocess.Popen(
        [str(PYRT), "serve", "--code-dir", str(code), "--host", "127.0.0.1",
         "--port", str(free_port()), "--workers", "2"],
        env=clean_env(KEY), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, cwd="/",
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
    try:
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = err.decode(errors="replace")
    tries = text.count("cannot create a worker's channel, pipes or gate: Too many open files")
    if "zygote" not in text:
        pytest.skip(f"{limit} fds do not let this build start the zygote: {text[-500:]}")
    assert proc.returncode == 0, text[-2000:]
    assert 1 <= tries < 30, f"{tries} tries in 2 s:\n{text[-2000:]}"
    assert "next start in" in text, text[-2000:]
