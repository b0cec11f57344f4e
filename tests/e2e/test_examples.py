"""Every folder in examples/, built with `pyrt build`, then executed the two ways a
developer meets it: `pyrt run` and `pyrt serve`. Both must give the same answer (same
zygote, worker and frames), and the answer must be what the example's README says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from conftest import REPO, ServerFactory, clean_env, run_bounded
from toolchain import expect_ok, find_links_env, make_wheel, run_tool

EXAMPLES_DIR = REPO / "examples"

# The stand-in for PyPI's humanize (no index here): same name, and the one function
# with-deps uses, with humanize's output for decimal units.
HUMANIZE_STANDIN = '''\
def naturalsize(value, binary=False, gnu=False, format="%.1f"):
    units = ("kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    size = float(value)
    if abs(size) == 1:
        return "%d Byte" % size
    if abs(size) < 1000:
        return "%d Bytes" % size
    for i, unit in enumerate(units):
        unit_size = 1000 ** (i + 2)
        if abs(size) < unit_size:
            return (format + " %s") % (1000 * size / unit_size, unit)
    return (format + " %s") % (1000 * size / unit_size, units[-1])
'''

# example -> [(payload, status, expected body or None, substring of the body)]
CASES: dict[str, list[tuple[Any, int, Optional[Any], str]]] = {
    "hello": [(None, 200, {"Hello": "World!"}, "")],
    "echo": [({"a": 1}, 200, {"payload": {"a": 1}, "env": {"K": "v"}, "headers": {"h": "v"}},
              "")],
    "with-deps": [({"bytes": 3000000}, 200, {"size": "3.0 MB"}, ""),
                  ({"bytes": "x"}, 400, {"message": "payload.bytes must be a number"}, "")],
    "async": [({"sleep": 0.05}, 200, None, '"slept": 0.05'),
              ({"sleep": 99}, 400, None, "payload.sleep must be a number")],
    "errors": [("raise", 500, None, "ItemNotFound: no item named 'raise'"),
               ("missing", 404, {"message": "no such item", "code": 404}, ""),
               ("fine", 200, {"ok": True}, "")],
}


def test_every_example_has_cases_and_a_readme() -> None:
    found = sorted(p.name for p in EXAMPLES_DIR.iterdir() if p.is_dir())
    assert found == sorted(CASES), "each example needs its cases here"
    for name in found:
        readme = EXAMPLES_DIR / name / "README.md"
        assert readme.exists() and readme.read_text().strip(), f"{name}: README.md"
        assert name in (EXAMPLES_DIR / "README.md").read_text()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """examples/ copied and built (with-deps from a local wheel of the stand-in)."""
    root = tmp_path_factory.mktemp("examples")
    wheels = root / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "humanize", "4.9.0", {"humanize/__init__.py": HUMANIZE_STANDIN})
    for name in CASES:
        shutil.copytree(EXAMPLES_DIR / name, root / name,
                        ignore=shutil.ignore_patterns("__pycache__", "runtime-env"))
        expect_ok(run_tool(["build", str(root / name)], env=find_links_env(wheels),
                           timeout=180))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def run_args(payload: Any) -> list[str]:
    args = ["--env", "K=v", "--header", "h=v"]
    if payload is not None:
        args += ["--payload", json.dumps(payload)]
    return args


def check(name: str, case: tuple[Any, int, Optional[Any], str], status: int, body: str) -> None:
    payload, want_status, want_body, want_text = case
    assert status == want_status, f"{name} {payload!r}: {status} {body}"
    if want_body is not None:
        assert json.loads(body) == want_body
    assert want_text in body


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_and_serve_answer_the_same(name: str, built: Path,
                                       server_factory: ServerFactory) -> None:
    fn = built / name
    ran = []
    for case in CASES[name]:
        rc, out, err = run_bounded(["run", str(fn), *run_args(case[0])], clean_env(None), "/",
                                   60)
        assert (rc == 0) == (200 <= case[1] < 300), err
        assert f"status {case[1]}" in err
        check(name, case, case[1], out)
        ran.append(out)

    server = server_factory(code_dir=fn, args=["--workers", "1"])
    for case, run_body in zip(CASES[name], ran):
        body: dict[str, Any] = {"env": {"K": "v"}, "headers": {"h": "v"}}
        if case[0] is not None:
            body["payload"] = case[0]
        status, _, raw = server.post(body)
        text = raw.decode()
        check(name, case, status, text)
        if name == "async" and status == 200:
            # Module state lives on in a server's worker; each `pyrt run` starts afresh.
            served, local = json.loads(text), json.loads(run_body)
            assert local["calls_in_this_worker"] == 1
            assert served.pop("calls_in_this_worker") >= 1
            local.pop("calls_in_this_worker")
            assert served == local
        else:
            assert text == run_body, f"{name} {case[0]!r}: serve and run differ"


def test_async_state_persists_across_executions(built: Path,
                                                server_factory: ServerFactory) -> None:
    server = server_factory(code_dir=built / "async", args=["--workers", "1"])
    counts = [server.post_json({"payload": {"sleep": 0}})[2]["calls_in_this_worker"]
              for _ in range(3)]
    assert counts == [counts[0], counts[0] + 1, counts[0] + 2]
