"""`pyrt launch`: CONTRACT.md section 1, "launch: what must hold", and the whole tool
chain as a user runs it: build -> pack -> launch -> POST.

Malicious archives are written with `tarfile`; each must be refused with a message naming
the member, a non-zero exit, and nothing written outside the code folder.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import HOST, KEY, ServerFactory, free_port
from toolchain import (DEMO_VALUE, HELLO_MAIN, SITE, Member, ToolResult, Wheelhouse,
                       expect_error, expect_ok, find_links_env, new_base, run_tool, tar_dir,
                       tar_file, tar_special, tree_state, write_tar, write_tree)

FASTSUM_MAIN = """\
import fastsum
import fastsum._fast
import pyrtdemo


def main(req, res):
    a, b = req.payload
    return res.json({"sum": fastsum.add(a, b),
                     "so": fastsum._fast.__file__.endswith(".so"),
                     "demo": pyrtdemo.VALUE})
"""


@pytest.fixture
def base() -> Iterator[Path]:
    """A world-readable folder under /tmp holding outside/secret.txt beside the code."""
    path = new_base("pyrt-launch-")
    write_tree(path, {"outside/secret.txt": "outside the folder\n"})
    yield path
    shutil.rmtree(path, ignore_errors=True)


def launch_args(archive: Path, code_dir: Path) -> list[str]:
    return ["launch", "--archive", str(archive), "--code-dir", str(code_dir),
            "--host", HOST, "--port", str(free_port())]


def launch_fails(archive: Path, code_dir: Path) -> ToolResult:
    """Runs a launch that must refuse the archive (if it served, the run times out)."""
    return run_tool(launch_args(archive, code_dir), key=KEY, timeout=15)


def outside_state(base: Path) -> dict:
    """Everything in base except the code folder (and the archive)."""
    return {rel: st for rel, st in tree_state(base).items()
            if rel != "code" and not rel.startswith("code/") and not rel.endswith(".tar.gz")}


# --------------------------------------------------------------------------- the whole chain

def test_build_pack_launch_serve(wheelhouse: Wheelhouse, base: Path,
                                 server_factory: ServerFactory) -> None:
    """A function with a pure and a compiled (C extension) dependency, as a user ships it."""
    src = base / "src"
    write_tree(src, {"main.py": FASTSUM_MAIN,
                     "requirements.txt": "fastsum==1.0\npyrtdemo==1.0\n"})
    expect_ok(run_tool(["build", str(src)], env=find_links_env(wheelhouse.dir), timeout=90))
    assert list((src / SITE / "fastsum").glob("_fast*.so")), "fastsum's .so is not installed"
    expect_ok(run_tool(["pack", str(src)], timeout=60))
    archive = src / "code.tar.gz"
    assert archive.is_file()

    code = base / "code"  # does not exist yet: launch creates it
    server = server_factory(code_dir=code, subcommand="launch", args=["--archive", str(archive)])
    assert (code / "main.py").read_text() == FASTSUM_MAIN
    assert (code / SITE / "fastsum").is_dir()
    before = tree_state(code)
    status, _, body = server.post_json({"payload": [40, 2]})
    assert status == 200, body
    assert body == {"sum": 42, "so": True, "demo": DEMO_VALUE}
    status, _, body = server.post_json({"payload": [2**40, 1]})
    assert (status, body["sum"]) == (200, 2**40 + 1)
    changed = sorted(rel for rel, st in tree_state(code).items() if before.get(rel) != st)
    assert not changed, f"serving wrote into the code folder: {changed[:20]}"


def test_seed_tar_command_is_accepted(base: Path, server_factory: ServerFactory) -> None:
    """The seed's `tar -czvf ./code.tar.gz ./`, run inside the folder it packs."""
    src = base / "src"
    write_tree(src, {"main.py": HELLO_MAIN})
    expect_ok(run_tool(["build", str(src)], timeout=60))
    tar = subprocess.run(["tar", "-czvf", "./code.tar.gz", "./"], cwd=str(src),
                         capture_output=True, text=True, timeout=60)
    assert tar.returncode in (0, 1), tar.stderr  # 1: "file changed as we read it"
    code = base / "code"
    server = server_factory(code_dir=code, subcommand="launch",
                            args=[f"--archive={src / 'code.tar.gz'}"])
    status, _, body = server.post_json({"payload": "seed"})
    assert (status, body) == (200, {"hello": "seed"})


def test_partial_self_member_and_dot_member(base: Path, server_factory: ServerFactory) -> None:
    """What that tar can produce: a `./` member and a truncated `./code.tar.gz` inside."""
    partial = write_tar(base / "inner.tar.gz", [tar_file("./x.txt", os.urandom(4096))])
    archive = write_tar(base / "code.tar.gz", [
        tar_dir("."),
        tar_file("./main.py", HELLO_MAIN.encode()),
        tar_file("./code.tar.gz", partial.read_bytes()[:100]),
    ])
    code = base / "code"
    server = server_factory(code_dir=code, subcommand="launch", args=["--archive", str(archive)])
    status, _, body = server.post_json({"payload": 7})
    assert (status, body) == (200, {"hello": 7})


def test_special_bits_dropped_and_inside_links_kept(base: Path,
                                                    server_factory: ServerFactory) -> None:
    archive = write_tar(base / "code.tar.gz", [
        tar_dir("."),
        tar_file("./main.py", HELLO_MAIN.encode()),
        tar_file("./tool", b"#!/bin/sh\necho tool\n", mode=0o6755),
        tar_file("./setgid-only", b"x", mode=0o2644),
        tar_dir("./shared", mode=0o2775),
        tar_file("./shared/data.txt", b"data"),
        tar_special("./link.py", tarfile.SYMTYPE, linkname="main.py"),
        tar_special("./shared/up.txt", tarfile.SYMTYPE, linkname="../tool"),
        tar_special("./hard.py", tarfile.LNKTYPE, linkname="./main.py"),
    ])
    code = base / "code"
    server = server_factory(code_dir=code, subcommand="launch", args=["--archive", str(archive)])
    for rel in ("tool", "setgid-only", "shared"):
        mode = (code / rel).lstat().st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID), f"{rel}: mode {oct(mode)} kept s-bits"
    assert stat.S_IMODE((code / "tool").stat().st_mode) == 0o755
    assert os.readlink(code / "link.py") == "main.py"
    assert (code / "shared" / "up.txt").read_text() == "#!/bin/sh\necho tool\n"
    assert (code / "hard.py").read_text() == HELLO_MAIN
    status, _, body = server.post_json({"payload": "bits", "file": "link.py"})
    assert (status, body) == (200, {"hello": "bits"})


# --------------------------------------------------------------------------- refused archives

# (members, the text the message must contain, paths under base that must not exist)
Case = Callable[[Path], tuple[list[Member], str, list[str]]]


def _absolute(base: Path) -> tuple[list[Member], str, list[str]]:
    target = str(base / "abs-pwned")
    return [tar_file(target, b"pwned")], target, ["abs-pwned"]


def _absolute_dir(base: Path) -> tuple[list[Member], str, list[str]]:
    target = str(base / "outside" / "pwned.txt")
    return [tar_file(target, b"pwned")], target, ["outside/pwned.txt"]


def _dotdot(base: Path) -> tuple[list[Member], str, list[str]]:
    return [tar_file("../pwned", b"pwned")], "../pwned", ["pwned"]


def _dotdot_nested(base: Path) -> tuple[list[Member], str, list[str]]:
    name = "./sub/../../outside/pwned"
    return [tar_dir("./sub"), tar_file(name, b"pwned")], name, ["outside/pwned"]


def _symlink_absolute(base: Path) -> tuple[list[Member], str, list[str]]:
    return ([tar_special("./escape", tarfile.SYMTYPE, linkname=str(base / "outside")),
             tar_file("./escape/pwned", b"pwned")], "escape", ["outside/pwned"])


def _symlink_relative(base: Path) -> tuple[list[Member], str, list[str]]:
    return ([tar_dir("./sub"),
             tar_special("./sub/escape", tarfile.SYMTYPE, linkname="../../outside"),
             tar_file("./sub/escape/pwned", b"pwned")], "sub/escape", ["outside/pwned"])


def _symlink_dangling_outside(base: Path) -> tuple[list[Member], str, list[str]]:
    return ([tar_special("./later", tarfile.SYMTYPE, linkname="../later-target")],
            "later", ["later-target"])


def _symlink_chain(base: Path) -> tuple[list[Member], str, list[str]]:
    """Each link alone stays inside, the chain climbs out: selfdir -> ., climber ->
    selfdir/.. (= the parent of the code folder)."""
    return ([tar_special("./selfdir", tarfile.SYMTYPE, linkname="."),
             tar_special("./climber", tarfile.SYMTYPE, linkname="selfdir/..")],
            "climber", [])


def _symlink_chain_write(base: Path) -> tuple[list[Member], str, list[str]]:
    return ([tar_special("./selfdir", tarfile.SYMTYPE, linkname="."),
             tar_special("./climber", tarfile.SYMTYPE, linkname="selfdir/.."),
             tar_file("./climber/outside/pwned", b"pwned")],
            "climber", ["outside/pwned"])


def _hardlink_through_symlink_chain(base: Path) -> tuple[list[Member], str, list[str]]:
    """The hardlink's target is lexically inside, but climber resolves outside."""
    return ([tar_special("./selfdir", tarfile.SYMTYPE, linkname="."),
             tar_special("./climber", tarfile.SYMTYPE, linkname="selfdir/.."),
             tar_special("./hl", tarfile.LNKTYPE, linkname="./climber/outside/secret.txt")],
            "hl", [])


def _hardlink_absolute(base: Path) -> tuple[list[Member], str, list[str]]:
    return ([tar_special("./hl", tarfile.LNKTYPE, linkname="/etc/passwd")], "hl", [])


def _hardlink_outside(base: Path) -> tuple[list[Member], str, list[str]]:
    return ([tar_special("./hl", tarfile.LNKTYPE, linkname="../outside/secret.txt")],
            "hl", [])


def _hardlink_absolute_to_outside_file(base: Path) -> tuple[list[Member], str, list[str]]:
    return ([tar_special("./hl", tarfile.LNKTYPE, linkname=str(base / "outside" / "secret.txt"))],
            "hl", [])


def _char_device(base: Path) -> tuple[list[Member], str, list[str]]:
    return ([tar_special("./null", tarfile.CHRTYPE, major=1, minor=3)], "null", [])


def _block_device(base: Path) -> tuple[list[Member], str, list[str]]:
    return ([tar_special("./disk", tarfile.BLKTYPE, major=7, minor=0)], "disk", [])


def _fifo(base: Path) -> tuple[list[Member], str, list[str]]:
    return ([tar_special("./pipe", tarfile.FIFOTYPE)], "pipe", [])


CASES: dict[str, Case] = {
    "absolute-path": _absolute,
    "absolute-path-into-outside-dir": _absolute_dir,
    "dotdot": _dotdot,
    "dotdot-nested": _dotdot_nested,
    "symlink-absolute": _symlink_absolute,
    "symlink-relative-up": _symlink_relative,
    "symlink-dangling-outside": _symlink_dangling_outside,
    "symlink-chain": _symlink_chain,
    "symlink-chain-write-through": _symlink_chain_write,
    "hardlink-through-symlink-chain": _hardlink_through_symlink_chain,
    "hardlink-etc-passwd": _hardlink_absolute,
    "hardlink-dotdot": _hardlink_outside,
    "hardlink-absolute-outside-file": _hardlink_absolute_to_outside_file,
    "char-device": _char_device,
    "block-device": _block_device,
    "fifo": _fifo,
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_malicious_archive_refused(case: str, base: Path) -> None:
    members, needle, must_not_exist = CASES[case](base)
    archive = write_tar(base / "evil.tar.gz",
                        [tar_dir("."), tar_file("./main.py", HELLO_MAIN.encode()), *members])
    secret = base / "outside" / "secret.txt"
    nlinks = (secret.stat().st_nlink, Path("/etc/passwd").stat().st_nlink)
    before = outside_state(base)
    code = base / "code"

    err = expect_error(launch_fails(archive, code), "launch")
    assert needle in err, f"the member {needle!r} is not named:\n{err}"
    for rel in must_not_exist:
        assert not os.path.lexists(base / rel), f"{rel} was written outside the folder"
    after = outside_state(base)
    assert after == before, (
        "something changed outside the code folder: "
        f"{sorted(set(after) ^ set(before) | {r for r in before if after.get(r) != before[r]})}")
    assert (secret.stat().st_nlink, Path("/etc/passwd").stat().st_nlink) == nlinks, (
        "a hardlink to a file outside was made")
    for special in ("null", "disk", "pipe", "hl"):
        assert not os.path.lexists(code / special), f"refused member {special} was created"


# --------------------------------------------------------------------------- bad input

def test_missing_archive(base: Path) -> None:
    missing = base / "no-such.tar.gz"
    err = expect_error(launch_fails(missing, base / "code"), "launch")
    assert str(missing) in err


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty", "gzip-of-garbage"])
def test_corrupt_archive(kind: str, base: Path) -> None:
    archive = base / "bad.tar.gz"
    if kind == "garbage":
        archive.write_bytes(b"this is not an archive\n" * 100)
    elif kind == "empty":
        archive.write_bytes(b"")
    elif kind == "gzip-of-garbage":
        archive.write_bytes(gzip.compress(os.urandom(600)))
    else:
        good = write_tar(base / "good.tar.gz", [
            tar_dir("."), tar_file("./main.py", HELLO_MAIN.encode()),
            tar_file("./big.bin", os.urandom(256 * 1024))])
        data = good.read_bytes()
        archive.write_bytes(data[:len(data) // 2])
    before = outside_state(base)
    err = expect_error(launch_fails(archive, base / "code"), "launch")
    assert "bad.tar.gz" in err or re.search(r"corrupt|truncat", err, re.I), (
        f"the message names neither the archive nor what is wrong with it:\n{err}")
    assert outside_state(base) == before


def test_launch_needs_the_key(base: Path) -> None:
    archive = write_tar(base / "code.tar.gz", [tar_file("./main.py", HELLO_MAIN.encode())])
    result = run_tool(launch_args(archive, base / "code"), key=None, timeout=15)
    err = expect_error(result, "launch")
    assert "INTERNAL_RUNTIME_KEY" in err


def test_extract_only_and_plain_tar(base: Path) -> None:
    """--extract-only extracts and exits (the image's v5 start times the two steps apart),
    needing no key; a plain tar (pack --no-gzip, or code.tar) extracts like a gzip one."""
    fn = base / "fn"
    write_tree(fn, {"main.py": HELLO_MAIN, "lib/data.txt": "data\n"})
    for name, extra in (("code.tar", ["--no-gzip"]), ("code.tar.gz", [])):
        archive = base / name
        expect_ok(run_tool(["pack", str(fn), "-o", str(archive), *extra]))
        assert (archive.read_bytes()[:2] == b"\x1f\x8b") == (not extra)
        code = base / f"code-{name}"
        result = run_tool(["launch", "--extract-only", "--archive", str(archive),
                           "--code-dir", str(code)], key=None, timeout=15)
        expect_ok(result)
        assert (code / "main.py").read_text() == HELLO_MAIN
        assert (code / "lib" / "data.txt").read_text() == "data\n"
    bad = write_tar(base / "bad.tar.gz", [tar_file("../escape.py", b"x")])
    err = expect_error(run_tool(["launch", "--extract-only", "--archive", str(bad),
                                 "--code-dir", str(base / "code-bad")], key=None,
                                timeout=15), "launch")
    assert "escape.py" in err and not (base / "escape.py").exists()
