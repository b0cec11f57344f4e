"""Each worker's private TMPDIR (issue 17): a folder only its worker's uid may enter,
that a replaced worker's successor finds empty, inside one per-server folder that is
gone once pyrt stops -- in every configuration of test_sandbox.py: root (a uid per
worker), root with --user nobody, root with --worker-uid-base 0 (one shared uid), and
pyrt started unprivileged (its uid shared).

The function (functions/tmpdir) says what tempfile.gettempdir() gives it, and writes
files there, a folder it closed (mode 0) and a read-only one (0500) included.
"""

from __future__ import annotations

import concurrent.futures
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Server, ServerFactory, make_code_dir
from test_sandbox import (CONFIGS, OWN_UID, SHARED_ROOT, LatencyProbe, start,  # noqa: F401
                          unprivileged_pyrt)

ROOT = os.geteuid() == 0
NOBODY = 65534
DENIED = {"EACCES", "EPERM"}

pytestmark = pytest.mark.skipif(not ROOT, reason="the configurations are started as root")


def probe(server: Server, payload: Any = None, timeout: float | None = None) -> dict:
    status, _, body = server.call("tmpdir", payload or {}, timeout=timeout)
    assert status == 200, body
    return body


def base_of(config: str, folder: str) -> Path:
    """The per-server folder: base/UID with a uid per worker, else base/shared/w.XXXXXX."""
    path = Path(folder)
    return path.parent if config in OWN_UID else path.parent.parent


@pytest.fixture(scope="module", params=CONFIGS)
def config_server(request: pytest.FixtureRequest, module_factory: ServerFactory,
                  unprivileged_pyrt: Path) -> tuple[str, Server]:  # noqa: F811
    return request.param, start(module_factory, request.param, unprivileged_pyrt, workers=2)


def test_gettempdir_is_private(config_server: tuple[str, Server]) -> None:
    """tempfile.gettempdir(), TMPDIR, TEMP and TMP name one folder: 0700, the worker's
    own, in a per-server folder made by the master that workers may only pass through."""
    config, server = config_server
    body = probe(server)
    folder = body["gettempdir"]
    assert body["env"] == {"TMPDIR": folder, "TEMP": folder, "TMP": folder}, body
    assert body["mode"] == 0o700, body
    assert body["owner"] == body["uid"], body
    assert body["mkstemp_in_it"], body
    base = base_of(config, folder)
    assert base.name.startswith("pyrt-workers-"), base
    assert base.parent == Path(os.environ.get("TMPDIR", "/tmp")), base
    st = base.stat()
    assert stat.S_IMODE(st.st_mode) == 0o511, oct(st.st_mode)
    assert st.st_uid == (NOBODY if config.startswith("unprivileged") else 0), st
    if config in OWN_UID:
        assert Path(folder).name == str(body["uid"]), folder
    else:
        assert Path(folder).parent.name == "shared", folder


def test_home_falls_back_to_it(config_server: tuple[str, Server]) -> None:
    """The server's HOME (root's: this test's) is not writable by a worker uid or nobody:
    HOME is then the worker's private folder, emptied with it, not a /tmp/pyrt-UID/home
    that every worker and later server with that uid would share."""
    config, server = config_server
    body = probe(server)
    if config in SHARED_ROOT:  # the workers are root: the server's HOME is theirs
        assert body["home"] == os.environ["HOME"], body
    else:
        assert body["home"] == body["gettempdir"], body


def test_a_sibling_cannot_enter_it(config_server: tuple[str, Server]) -> None:
    """With a uid per worker: a sibling can neither list nor read a worker's folder,
    nor list the per-server folder to find the others."""
    config, server = config_server
    if config not in OWN_UID:
        pytest.skip("workers share one uid in this configuration")

    def both(payload: dict) -> list[dict]:
        # Two calls at once, each sleeping: each is run by one of the two workers.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            calls = [pool.submit(probe, server, {**payload, "sleep": 1.0}) for _ in range(2)]
            return [c.result(timeout=30) for c in calls]

    first = both({"write": 1})
    owner = {b["gettempdir"]: b["pid"] for b in first}
    assert len(owner) == 2 and len(set(owner.values())) == 2, first
    second = both({"peek": sorted(owner)})
    assert {b["pid"] for b in second} == set(owner.values()), (first, second)
    for body in second:
        for folder, seen in body["peeks"].items():
            if owner[folder] == body["pid"]:
                assert seen["list"] == seen["read"] == "ok", (folder, seen)
            else:
                assert seen["list"] in DENIED and seen["read"] in DENIED, (folder, seen)
            assert seen["parent_list"] in DENIED, (folder, seen)


@pytest.mark.parametrize("how", ["deadline", "crash"])
@pytest.mark.parametrize("config", CONFIGS)
def test_a_replaced_worker_starts_empty_and_the_folder_goes_at_stop(
        server_factory: ServerFactory, unprivileged_pyrt: Path,  # noqa: F811
        config: str, how: str) -> None:
    """One worker, replaced again and again (killed at its deadline, or crashed) after
    filling its folder: each successor finds its folder empty. With a uid per worker
    the 4 uids of --workers 1 come round again, so a folder is found emptied, not only
    new; with one shared uid each successor makes a new one and removes the old ones
    whose worker has exited.
    After SIGTERM the per-server folder is gone, whatever the workers left in it."""
    server = start(server_factory, config, unprivileged_pyrt, workers=1)
    seen = [probe(server)]
    for _ in range(5):
        payload = {"write": 3, "then": "hang" if how == "deadline" else "crash"}
        status, _, body = server.call_raw("tmpdir", payload,
                                          timeout=1.0 if how == "deadline" else None)
        assert status in (500, 504), body
        body = probe(server)  # the successor's first execution
        assert body["entries"] == [], body
        assert body["pid"] != seen[-1]["pid"], "not replaced"
        seen.append(body)
    folders = [b["gettempdir"] for b in seen]
    if config in OWN_UID:
        assert len(set(folders)) < len(folders), folders  # a uid came round again
    else:
        assert len(set(folders)) == len(folders), folders
        # A worker killed at its deadline is replaced before it has exited: its folder
        # (still locked) goes when the next worker starts.
        gone_by_now = folders[:-1] if how == "crash" else folders[:-2]
        assert [f for f in gone_by_now if os.path.exists(f)] == [], folders
    probe(server, {"write": 3})  # and the last one leaves files
    base = base_of(config, folders[-1])
    assert base.is_dir()
    assert server.stop() == 0
    assert not base.exists(), sorted(str(p) for p in base.rglob("*"))


def test_a_big_tree_is_removed_off_the_masters_loop(server_factory: ServerFactory) -> None:
    """20,000 files left by a crashed worker are removed by its successor while the
    master answers every health check within 1 s (503 until the successor is ready:
    the only worker is being replaced); and at SIGTERM a big tree goes too,
    after the last answer (the master removes it once its loop has ended)."""
    server = server_factory(["--workers", "1", "--worker-uid-base", "0"])
    folder = probe(server, {"tree": [100, 200]}, timeout=60.0)["gettempdir"]
    assert sum(1 for _ in Path(folder).rglob("*")) > 20_000
    with LatencyProbe(server) as latency:
        status, _, body = server.call_raw("tmpdir", {"then": "crash"})
        assert status == 500, body
        t = time.monotonic()
        while os.path.exists(folder) and time.monotonic() - t < 60:
            time.sleep(0.05)
        took = time.monotonic() - t
        time.sleep(0.2)
    assert not os.path.exists(folder), f"not removed in {took:.1f} s"
    # 503 while the only worker is replaced: the master answered, and at once.
    assert [f for f in latency.failures if f != "status 503"] == [], latency.failures
    assert len(latency.samples) >= 5, latency.samples
    assert latency.worst() < 1.0, latency.samples
    body = probe(server, {"tree": [100, 200]}, timeout=60.0)
    assert body["entries"] == [], body
    base = base_of("shared", body["gettempdir"])
    t = time.monotonic()
    assert server.stop() == 0
    assert not base.exists()
    assert time.monotonic() - t < 10.0


PRELOADED = (
    "import os\n"
    "import tempfile\n"
    "AT_IMPORT = tempfile.gettempdir()\n"
    "\n"
    "def main(req, res):\n"
    "    return res.json({'at_import': AT_IMPORT, 'now': tempfile.gettempdir(),\n"
    "                     'TMPDIR': os.environ['TMPDIR'], 'pid': os.getpid()})\n"
)


def test_a_value_cached_in_the_zygote_is_replaced(server_factory: ServerFactory) -> None:
    """--preload: tempfile.gettempdir() called at import, in the zygote, cached the
    shared folder; in the worker it names the worker's own."""
    code = make_code_dir({"main.py": PRELOADED}, with_functions=False)
    server_factory.bases.append(code.parent)
    server = server_factory(["--workers", "1", "--preload"], code_dir=code)
    status, _, body = server.post_json({})
    assert status == 200, body
    assert body["now"] == body["TMPDIR"] != body["at_import"], body
    assert Path(body["now"]).parent.name.startswith("pyrt-workers-"), body
