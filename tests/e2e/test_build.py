"""`pyrt build`: CONTRACT.md section 1, "build: what must hold".

Offline: wheels are written by the tests (toolchain.py) and installed through
PIP_NO_INDEX + PIP_FIND_LINKS, or once through a PEP 503 index on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from conftest import ServerFactory
from toolchain import (DEMO_VALUE, SITE, SimpleIndex, ToolResult, Wheelhouse, env_python,
                       expect_error, expect_ok, find_links_env, new_base, pyc_flags, run_in_env,
                       run_tool, symlinks_escaping, tree_state, user_files, write_tree)

BUILD_TIMEOUT = 90.0

DEMO_MAIN = """\
import pyrtdemo
from helpers.util import shout


def main(req, res):
    return res.json({"demo": pyrtdemo.VALUE, "shout": shout(req.payload)})
"""


def build(fn: Path, *extra: str, env: dict[str, str] | None = None,
          timeout: float = BUILD_TIMEOUT) -> ToolResult:
    return run_tool(["build", str(fn), *extra], env=env, timeout=timeout)


# --------------------------------------------------------------------------- one dependency

@dataclass
class TwoBuilds:
    """A function with one dependency, built twice with unchanged requirements."""
    base: Path
    fn: Path
    before: dict
    first: ToolResult
    after_first: dict
    site_after_first: dict
    second: ToolResult
    after_second: dict
    site_after_second: dict
    pip_log: Path
    index_requests: list[str]


@pytest.fixture(scope="module")
def two_builds(wheelhouse: Wheelhouse,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoBuilds]:
    """First build through a PEP 503 index on 127.0.0.1 (PIP_INDEX_URL); the index is
    stopped before the second build, which must not need it (nor run pip at all)."""
    base = new_base()
    fn = base / "fn"
    fn.mkdir()
    write_tree(fn, {
        "main.py": DEMO_MAIN,
        "requirements.txt": "pyrtdemo==1.0\n",
        "helpers/__init__.py": "",
        "helpers/util.py": "def shout(x):\n    return str(x).upper()\n",
        "data/words.txt": "alpha\nbeta\n",
    })
    (fn / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(fn / "run.sh", 0o755)
    os.symlink("data/words.txt", fn / "words-link.txt")  # inside DIR: allowed
    (fn / "empty-dir").mkdir()
    before = user_files(fn)
    index_root = tmp_path_factory.mktemp("index")
    with SimpleIndex(index_root, {"pyrtdemo": wheelhouse.wheels["pyrtdemo"]}) as index:
        env = {"PIP_INDEX_URL": index.url}
        first = build(fn, env=env)
        index_requests = index.requests()
    after_first = user_files(fn)
    site = fn / SITE
    site_after_first = tree_state(site) if site.is_dir() else {}
    pip_log = base / "second-build-pip.log"
    # If the second build ran pip at all, pip would append to PIP_LOG (and find no index).
    second = build(fn, env={**env, "PIP_LOG": str(pip_log)})
    yield TwoBuilds(base, fn, before, first, after_first, site_after_first, second,
                    user_files(fn), tree_state(site) if site.is_dir() else {}, pip_log,
                    index_requests)
    shutil.rmtree(base, ignore_errors=True)


def test_build_installs_requirements(two_builds: TwoBuilds) -> None:
    expect_ok(two_builds.first)
    fn = two_builds.fn
    assert (fn / SITE / "pyrtdemo" / "__init__.py").is_file()
    assert (fn / "runtime-env" / ".pyrt-build").is_file()
    proc = run_in_env(fn, "import pyrtdemo; print(pyrtdemo.VALUE)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == DEMO_VALUE


def test_build_used_the_private_index(two_builds: TwoBuilds, wheelhouse: Wheelhouse) -> None:
    expect_ok(two_builds.first)
    requested = two_builds.index_requests
    assert any(r.startswith("/simple/pyrtdemo/") for r in requested), requested
    assert any(r.endswith(wheelhouse.wheels["pyrtdemo"].name) for r in requested), requested


def test_second_build_does_not_run_pip(two_builds: TwoBuilds) -> None:
    expect_ok(two_builds.first)
    expect_ok(two_builds.second)
    assert not two_builds.pip_log.exists(), (
        "the second build ran pip:\n" + two_builds.pip_log.read_text(errors="replace")[-2000:])
    first, second = two_builds.site_after_first, two_builds.site_after_second
    assert first, "site-packages is empty after the first build"
    changed = sorted(rel for rel in set(first) | set(second) if first.get(rel) != second.get(rel))
    assert not changed, f"the second build touched installed files: {changed[:20]}"
    # Contract: less than half the first build's time; with 2x slack: less than it.
    t1, t2 = two_builds.first.seconds, two_builds.second.seconds
    print(f"first build {t1:.2f} s, second build {t2:.2f} s")
    assert t2 < t1, f"second build took {t2:.2f} s, the first {t1:.2f} s"


def test_runtime_env_holds_interpreter_copies(two_builds: TwoBuilds) -> None:
    expect_ok(two_builds.first)
    fn = two_builds.fn
    bindir = fn / "runtime-env" / "bin"
    pythons = [p for p in bindir.iterdir() if re.fullmatch(r"python(3(\.\d+)?)?", p.name)]
    assert pythons, f"no interpreter in {bindir}: {sorted(os.listdir(bindir))}"
    for p in pythons:
        st = p.lstat()
        assert stat.S_ISREG(st.st_mode), f"{p} is not a regular file (a symlink?)"
        assert st.st_mode & stat.S_IXUSR, f"{p} is not executable"
    assert symlinks_escaping(fn) == []
    cfg = (fn / "runtime-env" / "pyvenv.cfg").read_text()
    assert re.search(r"^home\s*=\s*" + re.escape(os.path.dirname(sys.executable)) + r"\s*$",
                     cfg, re.M), cfg
    proc = run_in_env(fn, "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.prefix)")
    assert proc.returncode == 0, proc.stderr
    version, prefix = proc.stdout.split("\n")[:2]
    assert version == "%d.%d" % sys.version_info[:2]
    assert os.path.realpath(prefix) == os.path.realpath(fn / "runtime-env")


def test_bytecode_is_unchecked_hash(two_builds: TwoBuilds) -> None:
    expect_ok(two_builds.first)
    fn = two_builds.fn
    tag = sys.implementation.cache_tag
    required = [fn / "__pycache__" / f"main.{tag}.pyc",
                fn / "helpers" / "__pycache__" / f"util.{tag}.pyc",
                fn / SITE / "pyrtdemo" / "__pycache__" / f"__init__.{tag}.pyc"]
    for pyc in required:
        assert pyc.is_file(), f"{pyc} was not written"
    wrong = [str(p.relative_to(fn)) for p in fn.rglob("*.pyc") if pyc_flags(p) != 1]
    assert not wrong, f"{len(wrong)} .pyc files are not unchecked-hash, e.g. {wrong[:10]}"


def test_user_files_untouched(two_builds: TwoBuilds) -> None:
    expect_ok(two_builds.first)
    expect_ok(two_builds.second)
    assert two_builds.after_first == two_builds.before
    assert two_builds.after_second == two_builds.before
    added = _all(two_builds.fn) - set(two_builds.before)
    stray = sorted(rel for rel in added
                   if not (rel == "runtime-env" or rel.startswith("runtime-env/")
                           or "__pycache__" in rel.split("/")))
    assert not stray, f"build added files outside runtime-env/ and __pycache__/: {stray}"


def _all(root: Path) -> set[str]:
    return {str(Path(dirpath, name).relative_to(root))
            for dirpath, dirnames, filenames in os.walk(root) for name in dirnames + filenames}


def test_built_function_is_served(two_builds: TwoBuilds, server_factory: ServerFactory) -> None:
    expect_ok(two_builds.first)
    server = server_factory(code_dir=two_builds.fn)
    status, _, body = server.post_json({"payload": "quiet"})
    assert status == 200, body
    assert body == {"demo": DEMO_VALUE, "shout": "QUIET"}


# --------------------------------------------------------------------------- requirements change

def _installed(fn: Path) -> set[str]:
    site = fn / SITE
    return {p.name for p in site.iterdir()} if site.is_dir() else set()


def test_changed_requirements_rebuild_exactly(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    """A change in a file named with -r (requirements.txt itself unchanged), then in
    requirements.txt, rebuilds; each new environment matches exactly (dropped packages
    are gone)."""
    fn = tmp_path / "fn"
    write_tree(fn, {"main.py": "import pyrtalpha\n\ndef main(req, res):\n"
                               "    return res.send(pyrtalpha.NAME)\n",
                    "requirements.txt": "-r base.txt\n",
                    "base.txt": "pyrtalpha==1.0\npyrtbeta==1.0\n"})
    env = find_links_env(wheelhouse.dir)
    expect_ok(build(fn, env=env))
    assert {"pyrtalpha", "pyrtbeta"} <= _installed(fn), sorted(_installed(fn))

    (fn / "base.txt").write_text("pyrtalpha==1.0\npyrtgamma==1.0\n")
    expect_ok(build(fn, env=env))
    installed = _installed(fn)
    assert {"pyrtalpha", "pyrtgamma"} <= installed, sorted(installed)
    assert not {n for n in installed if n.startswith("pyrtbeta")}, (
        f"a removed requirement is still installed: {sorted(installed)}")
    proc = run_in_env(fn, "import pyrtbeta")
    assert proc.returncode != 0, "pyrtbeta is still importable"

    # requirements.txt itself changes (base.txt no longer named): gamma goes.
    (fn / "requirements.txt").write_text("pyrtalpha==1.0\n")
    expect_ok(build(fn, env=env))
    installed = _installed(fn)
    assert "pyrtalpha" in installed
    assert not {n for n in installed if n.startswith("pyrtgamma")}, sorted(installed)


def test_force_rebuilds_from_scratch(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    write_tree(fn, {"main.py": "def main(req, res):\n    return res.send('ok')\n"})
    expect_ok(build(fn))
    marker = fn / "runtime-env" / "marker-from-test"
    marker.write_text("left by the test")
    expect_ok(build(fn))
    assert marker.exists(), "an unchanged build replaced runtime-env"
    expect_ok(build(fn, "--force"))
    assert not marker.exists(), "--force did not rebuild runtime-env from scratch"
    assert env_python(fn).is_file()
    marker.write_text("again")
    expect_ok(run_tool(["build", "-f", str(fn)], timeout=BUILD_TIMEOUT))
    assert not marker.exists(), "-f did not rebuild runtime-env"


def test_requirement_that_cannot_be_installed(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    write_tree(fn, {"main.py": "def main(req, res):\n    return res.send('ok')\n",
                    "requirements.txt": "pyrtdemo==1.0\npyrt-no-such-package==9.9\n"})
    env = find_links_env(wheelhouse.dir)
    for attempt in (1, 2):  # a failed build is not remembered as a good one
        err = expect_error(build(fn, env=env), "build")
        assert "pyrt-no-such-package" in err, f"attempt {attempt}: package not named:\n{err}"
        assert re.search(r"No matching distribution found|Could not find a version", err), (
            f"attempt {attempt}: pip's reason not shown:\n{err}")
    assert user_files(fn).keys() == {"main.py", "requirements.txt"}


# --------------------------------------------------------------------------- the entry point

GOOD = "def main(req, res):\n    return res.send('ok')\n"


@pytest.mark.parametrize("files, args, env, needles", [
    pytest.param({"util.py": GOOD}, [], {}, ["main.py", "index.py"], id="no-entry-point"),
    pytest.param({"main.py": GOOD}, ["--entrypoint", "missing.py"], {}, ["missing.py"],
                 id="named-entry-missing"),
    pytest.param({"main.py": GOOD}, [], {"ENTRYPOINT_NAME": "gone.py"}, ["gone.py"],
                 id="env-entry-missing"),
    pytest.param({"main.py": "import os\n\n\ndef main(req, res)\n    return 1\n"}, [], {},
                 ["main.py", "4"], id="syntax-error"),
    pytest.param({"app.py": "x = 1\n\n\nif x = 2:\n    pass\n"}, ["--entrypoint", "app.py"],
                 {}, ["app.py", "4"], id="syntax-error-named"),
    pytest.param({"main.py": "def handler(req, res):\n    return 1\n"}, [], {},
                 ["main.py", "main"], id="no-main"),
    pytest.param({"main.py": "main = 42\n"}, [], {}, ["main.py", "main"], id="main-not-callable"),
    pytest.param({"main.py": "def main():\n    return 1\n"}, [], {}, ["main.py", "main"],
                 id="main-no-args"),
    pytest.param({"main.py": "def main(req, res, extra):\n    return 1\n"}, [], {},
                 ["main.py", "main"], id="main-three-args"),
    pytest.param({"main.py": "def main(*, req, res):\n    return 1\n"}, [], {},
                 ["main.py", "main"], id="main-keyword-only"),
    pytest.param({"main.py": "import pyrt_not_installed_anywhere\n" + GOOD}, [], {},
                 ["main.py", "pyrt_not_installed_anywhere"], id="import-error"),
    pytest.param({"main.py": "raise RuntimeError('boom at import')\n" + GOOD}, [], {},
                 ["main.py", "boom at import"], id="raises-at-import"),
    pytest.param({"main.py": "import sys\nsys.exit(0)\n" + GOOD}, [], {}, ["main.py"],
                 id="sys-exit-at-import"),
    pytest.param({"main.py": "import os\nos._exit(0)\n" + GOOD}, [], {}, ["main.py"],
                 id="os-exit-0-at-import"),
    pytest.param({"main.py": "import ctypes\nctypes.string_at(0)\n" + GOOD}, [], {},
                 ["main.py"], id="segfault-at-import"),
    pytest.param({"main.py": GOOD, "sub/x.py": GOOD}, ["--entrypoint", "../outside.py"], {},
                 ["outside.py"], id="entry-outside-dir"),
])
def test_bad_entry_point(files: dict[str, str], args: list[str], env: dict[str, str],
                         needles: list[str]) -> None:
    base = new_base()
    try:
        (base / "outside.py").write_text(GOOD)
        fn = base / "fn"
        write_tree(fn, files)
        err = expect_error(build(fn, *args, env=env), "build")
        for needle in needles:
            if needle.isdigit():
                assert re.search(rf"(:|line ){needle}\b", err), f"line {needle} not named:\n{err}"
            else:
                assert needle in err, f"{needle!r} not in the message:\n{err}"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("files, args, env", [
    pytest.param({"index.py": GOOD}, [], {}, id="index-py-default"),
    pytest.param({"main.py": GOOD, "index.py": "x = 1\n"}, [], {}, id="main-py-before-index-py"),
    pytest.param({"main.py": "x = 1\n", "app.py": GOOD}, [], {"ENTRYPOINT_NAME": "app.py"},
                 id="env-entrypoint"),
    pytest.param({"main.py": "x = 1\n", "src/app.py": GOOD}, ["--entrypoint", "src/app.py"], {},
                 id="option-entrypoint"),
    pytest.param({"main.py": "x = 1\n", "app.py": GOOD}, ["--entrypoint=app.py"], {},
                 id="option-equals"),
    pytest.param({"main.py": "async def main(req, res):\n    return res.send('ok')\n"}, [], {},
                 id="async-main"),
    pytest.param({"main.py": "def main(req, res, extra=None):\n    return 1\n"}, [], {},
                 id="main-optional-third"),
    pytest.param({"main.py": "def main(*args):\n    return 1\n"}, [], {}, id="main-varargs"),
    pytest.param({"main.py": "async def main(context):\n    return context.res.empty()\n"},
                 [], {}, id="v5-main-context"),
    pytest.param({"main.py": "x = 1\n", "tests.py": GOOD}, [],
                 {"OPEN_RUNTIMES_ENTRYPOINT": "tests.py"}, id="env-open-runtimes-entrypoint"),
    pytest.param({"main.py": "x = 1\n", "app.py": GOOD}, [],
                 {"INTERNAL_RUNTIME_ENTRYPOINT": "app.py"}, id="env-internal-entrypoint"),
    pytest.param({"main.py": "x = 1\n", "app.py": GOOD, "tests.py": "x = 1\n"}, [],
                 {"ENTRYPOINT_NAME": "app.py", "OPEN_RUNTIMES_ENTRYPOINT": "tests.py"},
                 id="entrypoint-name-first"),
    pytest.param({"main.py": "class Handler:\n    def __call__(self, req, res):\n"
                             "        return 1\n\n\nmain = Handler()\n"}, [], {},
                 id="callable-object"),
])
def test_good_entry_point(files: dict[str, str], args: list[str], env: dict[str, str],
                          tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    write_tree(fn, files)
    result = build(fn, *args, env=env)
    expect_ok(result)
    assert result.stderr.count("pyrt build: ") == 0, result.describe()


def test_options_after_dir(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    write_tree(fn, {"main.py": "x = 1\n", "app.py": GOOD})
    expect_ok(run_tool(["build", str(fn), "--entrypoint", "app.py"], timeout=BUILD_TIMEOUT))
    expect_error(run_tool(["build", str(fn)], timeout=BUILD_TIMEOUT), "build")


def test_build_defaults_to_current_dir(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    write_tree(fn, {"main.py": GOOD})
    expect_ok(run_tool(["build"], cwd=str(fn), timeout=BUILD_TIMEOUT))
    assert env_python(fn).is_file()


def test_validation_runs_as_user(tmp_path: Path) -> None:
    """--user NAME: the entry point is imported as that user, not as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    base = new_base()
    try:
        fn = base / "fn"
        write_tree(fn, {"main.py": "import os\n\nif os.geteuid() == 0:\n"
                                   "    raise RuntimeError('imported as root')\n\n\n" + GOOD})
        err = expect_error(build(fn), "build")
        assert "imported as root" in err
        expect_ok(build(fn, "--user", "nobody"))
        expect_ok(build(fn, env={"PYRT_USER": "nobody"}))
        err = expect_error(build(fn, "--user", "pyrt-no-such-user"), "build")
        assert "pyrt-no-such-user" in err
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_not_a_folder(tmp_path: Path) -> None:
    err = expect_error(build(tmp_path / "missing"), "build")
    assert "missing" in err
    (tmp_path / "file.py").write_text(GOOD)
    err = expect_error(build(tmp_path / "file.py"), "build")
    assert "file.py" in err


# --------------------------------------------------------------------------- symlinks

@pytest.mark.parametrize("link, target", [
    pytest.param("passwd", "/etc/passwd", id="absolute"),
    pytest.param("up.py", "../outside.py", id="relative-up"),
    pytest.param("sub/deeper/escape", "../../../outside.py", id="nested-relative"),
    pytest.param("dangling", "/nonexistent-pyrt/x", id="dangling-absolute"),
    pytest.param("outdir", "..", id="parent-dir"),
])
def test_symlink_outside_is_refused(link: str, target: str) -> None:
    base = new_base()
    try:
        (base / "outside.py").write_text(GOOD)
        fn = base / "fn"
        write_tree(fn, {"main.py": GOOD})
        (fn / link).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, fn / link)
        err = expect_error(build(fn), "build")
        assert link in err, f"the symlink {link} is not named:\n{err}"
        assert os.readlink(fn / link) == target
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_symlinks_inside_are_fine(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    write_tree(fn, {"main.py": GOOD, "lib/data.txt": "x"})
    os.symlink("lib/data.txt", fn / "data.txt")
    os.symlink("../main.py", fn / "lib" / "main-link.py")
    os.symlink("lib", fn / "lib-link")
    expect_ok(build(fn))
    assert symlinks_escaping(fn) == []


# --------------------------------------------------------------------------- user code's user

ROOT_REFUSING_MAIN = ("import os\n\nif os.geteuid() == 0:\n"
                      "    raise RuntimeError('imported as root')\n\n\n" + DEMO_MAIN.replace(
                          "from helpers.util import shout\n", "shout = str.upper\n"))


def test_root_only_folder_is_built_as_user(wheelhouse: Wheelhouse) -> None:
    """A 0700 folder of root's (a `mktemp -d`), --user nobody: pip and the entry point's
    import run as nobody, who may read the folder but writes only runtime-env; the
    user's files keep their owner, and nothing runs as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    base = new_base()
    try:
        fn = base / "fn"
        write_tree(fn, {"main.py": ROOT_REFUSING_MAIN, "requirements.txt": "pyrtdemo==1.0\n"})
        os.chmod(fn, 0o700)
        before = user_files(fn)
        expect_ok(build(fn, "--user", "nobody", env=find_links_env(wheelhouse.dir)))
        nobody = 65534
        site = list(fn.glob("runtime-env/lib/python3*/site-packages/pyrtdemo/__init__.py"))
        assert site and site[0].stat().st_uid == nobody, "pip did not run as nobody"
        assert (fn / "runtime-env").stat().st_uid == nobody
        assert stat.S_IMODE(fn.stat().st_mode) == 0o700 and fn.stat().st_uid == 0
        assert user_files(fn) == before
        out = run_in_env(fn, "import pyrtdemo; print(pyrtdemo.VALUE)")
        assert out.stdout.strip() == DEMO_VALUE
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_env_the_user_cannot_run_is_made_anew(tmp_path: Path) -> None:
    """A runtime-env the --user cannot run (made by root under umask 077, say) is not
    reused: it is made anew, by that user, and the build succeeds."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    base = new_base()
    try:
        fn = base / "fn"
        write_tree(fn, {"main.py": GOOD})
        expect_ok(build(fn))  # runtime-env made as root
        os.chmod(fn / "runtime-env" / "bin", 0o700)  # nobody cannot run its python
        expect_ok(build(fn, "--user", "nobody"))
        assert (fn / "runtime-env" / "bin" / "python").stat().st_uid == 65534
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- --install-command

def test_install_command_runs_in_the_env(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    """The platform's install command, run as given: in the folder, runtime-env active;
    its output shows as it comes; pyrt still compiles and checks the entry point."""
    fn = tmp_path / "fn"
    write_tree(fn, {"main.py": DEMO_MAIN.replace("from helpers.util import shout\n",
                                                  "shout = str.upper\n"),
                    "requirements.txt": "pyrtdemo==1.0\n"})
    command = ('echo "venv=$VIRTUAL_ENV python=$(command -v python) cwd=$(pwd)" && '
               "pip install --no-cache-dir -r requirements.txt")
    result = expect_ok(build(fn, "--install-command", command,
                             env=find_links_env(wheelhouse.dir)))
    venv = fn / "runtime-env"
    assert f"venv={venv} python={venv}/bin/python cwd={fn}" in result.stdout, result.describe()
    assert "pyrtdemo" in result.stdout  # pip's own output, not captured away
    assert run_in_env(fn, "import pyrtdemo; print(pyrtdemo.VALUE)").stdout.strip() == DEMO_VALUE
    assert pyc_flags(next(fn.glob("__pycache__/main.*.pyc"))) == 0b01


def test_install_command_failure_is_named(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    write_tree(fn, {"main.py": GOOD})
    err = expect_error(build(fn, "--install-command", "echo trying; exit 7"), "build")
    assert "install command failed (exit status 7)" in err and "exit 7" in err
    err = expect_error(build(fn, env={"PYRT_INSTALL_COMMAND": "false"}), "build")
    assert "install command failed" in err


def test_install_command_as_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    base = new_base()
    try:
        fn = base / "fn"
        write_tree(fn, {"main.py": GOOD})
        os.chmod(fn, 0o700)
        result = expect_ok(build(fn, "--user", "nobody", "--install-command",
                                 'echo "uid=$(id -u) home=$HOME"'))
        assert "uid=65534 home=/tmp" in result.stdout, result.describe()
    finally:
        shutil.rmtree(base, ignore_errors=True)
