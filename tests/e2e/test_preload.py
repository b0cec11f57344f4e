"""--preload: the entry point imported once in the zygote, shared by the workers."""

from __future__ import annotations

import os
import pwd
import time

import pytest

from conftest import ServerFactory, make_code_dir

ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody").pw_uid

PRELOADED = (
    "import os\n"
    "IMPORTED_IN = os.getpid()\n"
    "\n"
    "def main(req, res):\n"
    "    return res.json({'imported_in': IMPORTED_IN, 'runs_in': os.getpid()})\n"
)

DIES_AT_IMPORT = "import os\nos._exit(4)\n\ndef main(req, res):\n    return 'never'\n"


def test_preload_imports_in_the_zygote(server_factory: ServerFactory) -> None:
    code = make_code_dir({"main.py": PRELOADED}, with_functions=False)
    server_factory.bases.append(code.parent)
    srv = server_factory(["--workers", "2", "--preload"], code_dir=code)
    status, _, body = srv.post_json({})
    assert status == 200, body
    # Imported in another process (the zygote) than the worker that runs it.
    assert body["imported_in"] != body["runs_in"], body


def test_without_preload_the_worker_imports(server_factory: ServerFactory) -> None:
    code = make_code_dir({"main.py": PRELOADED}, with_functions=False)
    server_factory.bases.append(code.parent)
    srv = server_factory(["--workers", "1"], code_dir=code)
    status, _, body = srv.post_json({})
    assert status == 200, body
    assert body["imported_in"] == body["runs_in"], body


def test_zygote_dying_at_preload_answers_at_once(server_factory: ServerFactory) -> None:
    code = make_code_dir({"main.py": DIES_AT_IMPORT}, with_functions=False)
    server_factory.bases.append(code.parent)
    srv = server_factory(["--workers", "1", "--preload"], code_dir=code, wait_healthy=False)
    time.sleep(0.5)  # let the zygote fail a few times
    for _ in range(3):
        start = time.monotonic()
        status, _, body = srv.post_json({"timeout": 30})
        elapsed = time.monotonic() - start
        assert status == 500, body
        assert body["message"] == "the zygote exited with status 4", body
        assert elapsed < 2.0, f"answered after {elapsed:.2f} s, not at once"
    # Restarted with back-off, not in a tight loop: a few restarts in ~1 s, not hundreds.
    restarts = srv.log_text().count("the zygote exited with status 4; starting a new one")
    assert 2 <= restarts <= 12, restarts


WHO_AT_IMPORT = """\
import os

IMPORT_UID = os.getuid()
IMPORT_PID = os.getpid()


def main(req, res):
    return res.json({"import_uid": IMPORT_UID, "uid": os.getuid(),
                     "imported_in_worker": IMPORT_PID == os.getpid()})
"""


@pytest.mark.skipif(not ROOT, reason="--user needs root")
def test_preload_runs_as_the_user(server_factory: ServerFactory) -> None:
    """--preload imports the entry point in the zygote: that import is user code too,
    and must not run as root."""
    server = server_factory(["--preload", "--user", "nobody"],
                            files={"index.py": WHO_AT_IMPORT})
    status, _, body = server.post_json({"file": "index.py"})
    assert status == 200, body
    assert body["imported_in_worker"] is False, "preloaded in the zygote"
    # The zygote runs as --user; each worker as a uid of its own from the range (docs/
    # operating.md, "The sandbox"), or as --user too when the folder is out of the
    # range's reach. Never root.
    assert body["import_uid"] == NOBODY
    assert body["uid"] == NOBODY or body["uid"] >= 50000, body
