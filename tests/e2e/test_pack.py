"""`pyrt pack [DIR] [-o FILE]`: CONTRACT.md section 1 (sub-commands table).

A gzip tar of DIR's contents, runtime-env included, FILE itself excluded, members
relative (`./...`), and deterministic: the same folder gives the same bytes.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from toolchain import ToolResult, expect_error, expect_ok, run_tool, write_tree

FILES = {
    "main.py": "def main(req, res):\n    return res.send('packed')\n",
    "requirements.txt": "",
    "lib/helper.py": "X = 1\n",
    "lib/deep/data.bin": "\x00\x01binary\xff",
    "runtime-env/bin/python": "#!fake interpreter\n",
    "runtime-env/pyvenv.cfg": "home = /usr/bin\n",
    "runtime-env/lib/python3.11/site-packages/pkg/__init__.py": "",
}


def make_folder(root: Path, order: list[str] | None = None) -> Path:
    """A function folder; `order` is the order the files are created in."""
    root.mkdir(parents=True)
    os.chmod(root, 0o755)
    for rel in order or list(FILES):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(FILES[rel].encode("latin-1"))
        os.chmod(path, 0o644)
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            os.chmod(Path(dirpath, d), 0o755)
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(root / "run.sh", 0o755)
    (root / "empty").mkdir()
    os.chmod(root / "empty", 0o755)
    os.symlink("lib/helper.py", root / "helper-link.py")
    os.symlink("lib", root / "runtime-env" / "lib64")
    return root


def pack(*args: str) -> ToolResult:
    return run_tool(["pack", *args], timeout=30)


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tf:
        return {m.name: m for m in tf.getmembers()}


def touch_all(root: Path) -> None:
    now = time.time()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(Path(dirpath, name), (now, now), follow_symlinks=False)
    os.utime(root, (now, now))


def test_default_output_and_members(tmp_path: Path) -> None:
    fn = make_folder(tmp_path / "fn")
    expect_ok(pack(str(fn)))
    archive = fn / "code.tar.gz"
    assert archive.is_file(), "pack did not write DIR/code.tar.gz"
    assert archive.read_bytes()[:2] == b"\x1f\x8b", "not gzip"
    found = members(archive)
    bad = [n for n in found if not (n == "." or n.startswith("./"))]
    assert not bad, f"members not relative ./...: {bad}"
    names = set(found)
    for rel in FILES:
        assert f"./{rel}" in names, f"./{rel} missing from {sorted(names)}"
    assert "./code.tar.gz" not in names, "the archive contains itself"
    assert found["./empty"].isdir()
    assert found["./helper-link.py"].issym()
    assert found["./helper-link.py"].linkname == "lib/helper.py"
    assert found["./runtime-env/lib64"].issym()
    assert found["./run.sh"].mode & 0o777 == 0o755
    assert found["./main.py"].mode & 0o777 == 0o644
    with tarfile.open(archive, "r:gz") as tf:
        data = tf.extractfile("./lib/deep/data.bin")
        assert data is not None and data.read() == FILES["lib/deep/data.bin"].encode("latin-1")
    listing = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert "./main.py" in listing.stdout.split()


def test_pack_is_deterministic(tmp_path: Path) -> None:
    """Twice, more than a second apart, with every mtime changed in between (and the first
    archive now inside the folder): byte-identical."""
    fn = make_folder(tmp_path / "fn")
    expect_ok(pack(str(fn)))
    first = (fn / "code.tar.gz").read_bytes()
    time.sleep(1.1)
    touch_all(fn)
    expect_ok(pack(str(fn)))
    second = (fn / "code.tar.gz").read_bytes()
    assert first == second, "packing the same folder twice gave different archives"
    assert "./code.tar.gz" not in members(fn / "code.tar.gz")


def test_same_content_same_bytes(tmp_path: Path) -> None:
    """Two folders with the same content, created in different orders: same archive."""
    a = make_folder(tmp_path / "a" / "fn")
    time.sleep(1.1)
    b = make_folder(tmp_path / "b" / "fn", order=list(reversed(list(FILES))))
    expect_ok(pack(str(a), "-o", str(tmp_path / "a" / "code.tar.gz")))
    expect_ok(pack(str(b), "-o", str(tmp_path / "b" / "code.tar.gz")))
    assert (tmp_path / "a" / "code.tar.gz").read_bytes() == (
        tmp_path / "b" / "code.tar.gz").read_bytes()


def test_output_option(tmp_path: Path) -> None:
    fn = make_folder(tmp_path / "fn")
    out = tmp_path / "out" / "function.tgz"
    out.parent.mkdir()
    expect_ok(pack("-o", str(out), str(fn)))  # option before DIR
    assert out.is_file()
    assert not (fn / "code.tar.gz").exists(), "-o elsewhere still wrote DIR/code.tar.gz"
    assert "./main.py" in members(out)

    inside = fn / "dist.tar.gz"  # FILE inside DIR under another name: excluded too
    expect_ok(pack(str(fn), f"--output={inside}"))
    names = members(inside)
    assert "./dist.tar.gz" not in names, "the archive contains itself"
    assert "./main.py" in names


def test_pack_defaults_to_current_dir(tmp_path: Path) -> None:
    fn = make_folder(tmp_path / "fn")
    expect_ok(run_tool(["pack"], cwd=str(fn), timeout=30))
    assert "./main.py" in members(fn / "code.tar.gz")


@pytest.mark.parametrize("make", ["missing", "file"])
def test_pack_not_a_folder(tmp_path: Path, make: str) -> None:
    target = tmp_path / "target"
    if make == "file":
        target.write_text("x")
    err = expect_error(pack(str(target), "-o", str(tmp_path / "x.tar.gz")), "pack")
    assert "target" in err


def test_no_gzip_is_a_plain_tar_of_the_same_members(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    write_tree(fn, {"main.py": "x = 1\n", "sub/a.txt": "a\n"})
    expect_ok(run_tool(["pack", str(fn), "-o", str(tmp_path / "a.tar.gz")]))
    expect_ok(run_tool(["pack", str(fn), "-o", str(tmp_path / "a.tar"), "--no-gzip"]))
    plain = (tmp_path / "a.tar").read_bytes()
    assert plain[257:262] == b"ustar"  # not compressed
    assert gzip.decompress((tmp_path / "a.tar.gz").read_bytes()) == plain
