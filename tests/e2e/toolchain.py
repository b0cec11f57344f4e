"""Helpers for the toolchain tests (`pyrt build`, `pyrt pack`, `pyrt launch`).

- `run_tool`: runs one pyrt command to completion with a controlled environment (the
  caller's `PIP_*` settings are dropped, so only what a test sets reaches pip).
- Wheels, written offline: `make_wheel` (pure Python, written with `zipfile`) and
  `build_c_wheel` (the compiled extension in `wheels/fastsum`, built with Debian's
  setuptools and wheel, `pip wheel --no-build-isolation --no-deps`). `build_wheelhouse`
  makes the set the tests install from (session-scoped fixture `wheelhouse`).
- `SimpleIndex`: a PEP 503 index served by `python3 -m http.server` on 127.0.0.1,
  started and stopped by PID.
- Folder snapshots (`tree_state`, `user_files`), `.pyc` header flags, tar writers for
  crafted archives.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

import pytest

from conftest import (E2E_DIR, HOST, _OWN_CHILDREN, clean_env, free_port, run_bounded)

DEBIAN_PYTHON = "/usr/bin/python3"
PY_TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"
SITE = f"runtime-env/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
FASTSUM_SRC = E2E_DIR / "wheels" / "fastsum"

# pip's settings that every tool run gets: quiet, no user cache, no version check.
BASE_PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}


# --------------------------------------------------------------------------- running pyrt

@dataclass
class ToolResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return (f"pyrt {' '.join(self.args)} -> exit {self.returncode} in "
                f"{self.seconds:.2f} s\nstdout: {self.stdout[-3000:]}\n"
                f"stderr: {self.stderr[-6000:]}")


def tool_env(extra: Optional[Mapping[str, str]] = None,
             key: Optional[str] = None) -> dict[str, str]:
    """The environment of a tool run: clean_env() without PIP_*, plus BASE_PIP_ENV, extra."""
    env = {k: v for k, v in clean_env(key).items() if not k.startswith("PIP_")}
    env.update(BASE_PIP_ENV)
    env.update(extra or {})
    return env


def run_tool(args: Sequence[str], env: Optional[Mapping[str, str]] = None,
             timeout: float = 60.0, cwd: str = "/", key: Optional[str] = None) -> ToolResult:
    """Run `pyrt ARGS` to completion; fails the test (and kills it) past timeout."""
    start = time.monotonic()
    rc, out, err = run_bounded(args, tool_env(env, key), cwd, timeout)
    return ToolResult(list(args), rc, out, err, time.monotonic() - start)


def expect_ok(result: ToolResult) -> ToolResult:
    assert result.returncode == 0, result.describe()
    return result


def expect_error(result: ToolResult, command: str) -> str:
    """Asserts a failure with one message prefixed `pyrt COMMAND: `; returns stderr."""
    assert result.returncode != 0, "expected a failure:\n" + result.describe()
    prefix = f"pyrt {command}: "
    assert result.stderr.startswith(prefix), (
        f"stderr does not start with {prefix!r}:\n" + result.describe())
    assert result.stderr.count(prefix) == 1, (
        "expected one message, got several:\n" + result.describe())
    return result.stderr


def find_links_env(wheel_dir: Path) -> dict[str, str]:
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheel_dir)}


def env_python(fn: Path) -> Path:
    return fn / "runtime-env" / "bin" / "python"


def run_in_env(fn: Path, code: str) -> subprocess.CompletedProcess:
    """Run code with the function's runtime-env interpreter (isolated from the caller)."""
    return subprocess.run([str(env_python(fn)), "-c", code], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30, cwd=str(fn),
                          env=tool_env())


# --------------------------------------------------------------------------- folders

def new_base(prefix: str = "pyrt-tool-") -> Path:
    """A fresh world-readable folder under /tmp (so `--user nobody` can read below it)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)
    return base


def write_tree(root: Path, files: Mapping[str, str], mode: int = 0o644) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o755)
        path.write_text(text)
        os.chmod(path, mode)


def walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything below root, symlinks not followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames) + sorted(filenames):
            path = Path(dirpath, name)
            yield str(path.relative_to(root)), path.lstat()


def tree_state(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """rel -> (inode, mtime_ns, ctime_ns, size): changes when a file is rewritten."""
    return {rel: (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
            for rel, st in walk(root)}


def is_build_output(rel: str) -> bool:
    parts = rel.split(os.sep)
    return parts[0] == "runtime-env" or "__pycache__" in parts


def user_files(root: Path) -> dict[str, tuple]:
    """The user's part of a folder: rel -> (kind, content digest or link target, mode,
    mtime_ns; 0 for folders), everything but runtime-env/ and __pycache__/."""
    out: dict[str, tuple] = {}
    for rel, st in walk(root):
        if is_build_output(rel):
            continue
        path = root / rel
        if stat.S_ISLNK(st.st_mode):
            what = ("link", os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            what = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        else:  # a folder's mtime changes when __pycache__ is added to it
            out[rel] = ("dir", "", stat.S_IMODE(st.st_mode), 0)
            continue
        out[rel] = (*what, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def symlinks_escaping(root: Path) -> list[str]:
    """Symlinks below root whose target resolves outside root."""
    real_root = os.path.realpath(root)
    bad = []
    for rel, st in walk(root):
        if stat.S_ISLNK(st.st_mode):
            resolved = os.path.realpath(root / rel)
            if resolved != real_root and not resolved.startswith(real_root + os.sep):
                bad.append(f"{rel} -> {os.readlink(root / rel)}")
    return bad


def pyc_flags(path: Path) -> int:
    """The flags word of a .pyc header (PEP 552): 1 = hash-based, unchecked."""
    with open(path, "rb") as f:
        header = f.read(16)
    return int.from_bytes(header[4:8], "little")


# --------------------------------------------------------------------------- wheels

def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def make_wheel(dest: Path, name: str, version: str, files: Mapping[str, str],
               requires: Sequence[str] = ()) -> Path:
    """A pure-Python wheel NAME-VERSION-py3-none-any.whl holding files (rel -> text)."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    contents: dict[str, bytes] = {rel: text.encode() for rel, text in files.items()}
    contents[f"{dist_info}/METADATA"] = metadata.encode()
    contents[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: pyrt-e2e\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n").encode()
    record = "".join(f"{rel},{_record_hash(data)},{len(data)}\n"
                     for rel, data in contents.items())
    record += f"{dist_info}/RECORD,,\n"
    contents[f"{dist_info}/RECORD"] = record.encode()
    path = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in contents.items():
            zf.writestr(rel, data)
    return path


def build_c_wheel(dest: Path) -> Path:
    """Builds wheels/fastsum (a C extension) offline into dest; returns the wheel.

    Debian's interpreter with its setuptools and wheel (python3-setuptools,
    python3-wheel), no build isolation, no index: nothing is downloaded."""
    missing = [m for m in ("setuptools", "wheel")
               if subprocess.run([DEBIAN_PYTHON, "-c", f"import {m}"],
                                 capture_output=True).returncode != 0]
    if missing:
        pytest.fail(f"{DEBIAN_PYTHON} lacks {', '.join(missing)}: the compiled-extension "
                    f"wheel cannot be built offline (apt-get install -y python3-setuptools "
                    f"python3-wheel)")
    src = Path(tempfile.mkdtemp(prefix="pyrt-fastsum-"))
    try:
        tree = src / "fastsum"
        shutil.copytree(FASTSUM_SRC, tree,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        proc = subprocess.run(
            [DEBIAN_PYTHON, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
             "--no-index", "-w", str(dest), str(tree)],
            capture_output=True, text=True, timeout=120, env=tool_env({"PIP_NO_INDEX": "1"}),
            cwd=str(src))
    finally:
        shutil.rmtree(src, ignore_errors=True)
    wheels = sorted(dest.glob(f"fastsum-1.0-{PY_TAG}-{PY_TAG}-*.whl"))
    if proc.returncode != 0 or not wheels:
        pytest.fail(f"building the fastsum C extension wheel failed ({proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wheels[0]


DEMO_VALUE = "pyrtdemo 1.0 says hello"


@dataclass
class Wheelhouse:
    """Wheels for the tests, all in one folder (a find-links target)."""
    dir: Path
    wheels: dict[str, Path] = field(default_factory=dict)


def build_wheelhouse(dest: Path) -> Wheelhouse:
    house = Wheelhouse(dest)
    house.wheels["pyrtdemo"] = make_wheel(
        dest, "pyrtdemo", "1.0",
        {"pyrtdemo/__init__.py": f"VALUE = {DEMO_VALUE!r}\n"})
    for name in ("pyrtalpha", "pyrtbeta", "pyrtgamma"):
        house.wheels[name] = make_wheel(
            dest, name, "1.0", {f"{name}/__init__.py": f"NAME = {name!r}\n"})
    house.wheels["fastsum"] = build_c_wheel(dest)
    return house


# --------------------------------------------------------------------------- PEP 503 index

def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


class SimpleIndex:
    """`python3 -m http.server` on 127.0.0.1 serving ROOT/simple/ (PEP 503) and the wheels.

    Use as a context manager; it is stopped by its PID. `requests()` are the paths the
    server logged."""

    def __init__(self, root: Path, wheels: Mapping[str, Path]) -> None:
        self.root = root
        self.log_path = root / "http.log"
        files = root / "files"
        files.mkdir(parents=True)
        simple = root / "simple"
        simple.mkdir()
        links = []
        for name, wheel in sorted(wheels.items()):
            shutil.copy(wheel, files / wheel.name)
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            project = simple / _normalize(name)
            project.mkdir()
            (project / "index.html").write_text(
                "<!DOCTYPE html>\n<html><body>\n"
                f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>\n'
                "</body></html>\n")
            links.append(f'<a href="{_normalize(name)}/">{name}</a>')
        (simple / "index.html").write_text(
            "<!DOCTYPE html>\n<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/simple/"

    def __enter__(self) -> "SimpleIndex":
        self.port = free_port()
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [DEBIAN_PYTHON, "-m", "http.server", str(self.port), "--bind", HOST,
             "--directory", str(self.root)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, cwd="/")
        _OWN_CHILDREN.add(self.proc.pid)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"http.server exited with {self.proc.returncode}:\n"
                            f"{self.log_path.read_text(errors='replace')}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=1)
                conn.request("GET", "/simple/")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
                conn.close()
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("the simple index did not answer within 10 s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if hasattr(self, "log"):
            self.log.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests(self) -> list[str]:
        text = self.log_path.read_text(errors="replace")
        return [line.split('"GET ', 1)[1].split(" ", 1)[0]
                for line in text.splitlines() if '"GET ' in line]


# --------------------------------------------------------------------------- archives

Member = Callable[[tarfile.TarFile], None]


def tar_file(name: str, data: bytes = b"", mode: int = 0o644) -> Member:
    def add(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.mtime = 1_700_000_000
        tf.addfile(info, io.BytesIO(data))
    return add


def tar_dir(name: str, mode: int = 0o755) -> Member:
    def add(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        tf.addfile(info)
    return add


def tar_special(name: str, kind: bytes, linkname: str = "", major: int = 0,
                minor: int = 0) -> Member:
    """A symlink (SYMTYPE), hardlink (LNKTYPE), device (CHRTYPE, BLKTYPE) or FIFO."""
    def add(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        info.devmajor = major
        info.devminor = minor
        info.mode = 0o644 if kind not in (tarfile.SYMTYPE,) else 0o777
        tf.addfile(info)
    return add


def write_tar(path: Path, members: Sequence[Member]) -> Path:
    """A gzip tar with exactly these members, in this order (GNU format)."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tf:
        for member in members:
            member(tf)
    return path


HELLO_MAIN = "def main(req, res):\n    return res.json({'hello': req.payload})\n"
