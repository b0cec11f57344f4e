#!/usr/bin/python3
"""The container image test (`make test-container`): the seed's four commands, with podman.

No Docker engine and no registry here, so:
- a local Debian 12 base image is made with debootstrap (python3, python3-dev,
  python3-venv, python3-pip from Debian's archive, the mirror taken from apt's own
  sources) and imported as BASE_IMAGE (cached: a second run skips debootstrap);
- the Dockerfile is built with `podman build --format docker` (else HEALTHCHECK is
  dropped) and `--build-arg BASE_IMAGE=` that base;
- the seed's steps run with podman in place of docker against a sample function whose one
  dependency is a wheel written here, installed offline (`--network=none`, `PIP_NO_INDEX`,
  `PIP_FIND_LINKS` on a mounted folder);
- the server is published on 127.0.0.1 only; the health check is run with
  `podman healthcheck run` (no systemd timers here).

Checked: the response (the wheel's value), 401 on a wrong key, user code running as the
non-root user `pyrt`, the health check, a graceful stop (exit 0), the image's size above
its base (at most 60 MiB), the ownership hand-over of a second build.sh, and compiled
dependencies: the runtime image has no compiler (build.sh fails with its hint), the
`toolchain` target builds an sdist C extension, and the runtime image serves it.

It fails (exit 1), never skips, when podman or debootstrap cannot run. Every container it
starts has a name of its own and is removed at the end, on failure and on SIGINT/SIGTERM
too; every wait is bounded.

Options (environment): PYRT_CT_BASE (the base image reference, default
localhost/pyrt-bookworm-base:1), PYRT_CT_IMAGE (default python-runtime:3.10),
PYRT_DEBIAN_MIRROR (default: from /etc/apt/sources.list*), PYRT_CT_KEEP=1 (keep the
temporary folder; after a failure only its logs are kept).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Iterator, Mapping, Optional, Sequence

# executor_steps imports this module by name: run as a script, it is __main__ too.
sys.modules.setdefault("container_test", sys.modules[__name__])

REPO = Path(__file__).resolve().parent.parent.parent
HOST = "127.0.0.1"
BASE_IMAGE = os.environ.get("PYRT_CT_BASE", "localhost/pyrt-bookworm-base:1")
IMAGE = os.environ.get("PYRT_CT_IMAGE", "python-runtime:3.10")
TOOLCHAIN_IMAGE = IMAGE + "-toolchain"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-dev", "python3-venv", "python3-pip")
MAX_ABOVE_BASE = 60 * 1024 * 1024
SETUPTOOLS_WHEELS = Path("/usr/share/python-wheels")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""

DEMO_VALUE = "pyrtdemo 1.0 from a local wheel"
INDEX_PY = """\
import grp
import os
import pwd

import pyrtdemo


def user_name():
    # The account of this uid; None for a worker's uid of its own, which has none.
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return None


def main(req, res):
    return res.json({
        "value": pyrtdemo.VALUE,
        "payload": req.payload,
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "user": user_name(),
        "group": grp.getgrgid(os.getegid()).gr_name,
    })
"""
CEXT_INDEX_PY = """\
import pyrtcext


def main(req, res):
    return res.json({"sum": pyrtcext.add(req.payload["a"], req.payload["b"]),
                     "module": pyrtcext.__file__})
"""
CEXT_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *add(PyObject *self, PyObject *args)
{
    long a, b;
    (void)self;
    if (!PyArg_ParseTuple(args, "ll", &a, &b))
        return NULL;
    return PyLong_FromLong(a + b);
}

static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pyrtcext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_pyrtcext(void) { return PyModule_Create(&module); }
"""
CEXT_PYPROJECT = """\
[build-system]
requires = ["setuptools>=40.8", "wheel"]
build-backend = "setuptools.build_meta"
"""
CEXT_SETUP_PY = """\
from setuptools import Extension, setup

setup(name="pyrtcext", version="1.0",
      ext_modules=[Extension("pyrtcext", ["pyrtcext.c"])])
"""


class TestFailure(Exception):
    """A check failed: the message says what, with the evidence."""


# --------------------------------------------------------------------------- steps

@dataclass
class Step:
    name: str
    seconds: float
    note: str = ""


@dataclass
class Run:
    """State of one test run: what it started, what it measured."""
    env: dict[str, str]
    work: Path
    containers: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    followers: list["subprocess.Popen[bytes]"] = field(default_factory=list)
    prefix: str = field(default_factory=lambda: f"pyrt-ct-{os.getpid()}")

    def name(self, what: str) -> str:
        name = f"{self.prefix}-{what}"
        self.containers.append(name)
        return name


def log(msg: str) -> None:
    print(f"container-test: {msg}", flush=True)


class Timed:
    """`with Timed(run, "step"):` records the step's duration (also when it fails)."""

    def __init__(self, run: Run, name: str) -> None:
        self.run = run
        self.name = name
        self.note = ""

    def __enter__(self) -> "Timed":
        log(f"-- {self.name}")
        self.start = time.monotonic()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        seconds = time.monotonic() - self.start
        note = self.note if exc_type is None else "FAILED"
        self.run.steps.append(Step(self.name, seconds, note))
        log(f"   {self.name}: {seconds:.1f} s {note}".rstrip())


# --------------------------------------------------------------------------- processes

@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self, tail: int = 4000) -> str:
        return (f"$ {' '.join(self.args)}\n-> exit {self.returncode}\n"
                f"stdout: {self.stdout[-tail:]}\nstderr: {self.stderr[-tail:]}")


def run_cmd(args: Sequence[str], env: Mapping[str, str], timeout: float,
            cwd: Optional[Path] = None, stdin: Optional[bytes] = None,
            log_path: Optional[Path] = None) -> Result:
    """Runs a command to completion within timeout (killed past it: a failure)."""
    try:
        proc = subprocess.run(list(args), env=dict(env), cwd=str(cwd) if cwd else "/",
                              input=stdin, stdin=None if stdin is not None else
                              subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise TestFailure(f"cannot run {args[0]}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise TestFailure(f"$ {' '.join(args)}\ndid not finish within {timeout:.0f} s\n"
                          f"{(exc.stdout or b'')[-2000:]!r}\n{(exc.stderr or b'')[-2000:]!r}"
                          ) from exc
    result = Result(list(args), proc.returncode, proc.stdout.decode(errors="replace"),
                    proc.stderr.decode(errors="replace"))
    if log_path is not None:
        log_path.write_text(f"$ {' '.join(args)}\n{result.stdout}\n{result.stderr}\n"
                            f"exit {result.returncode}\n")
    return result


def expect_ok(result: Result) -> Result:
    if result.returncode != 0:
        raise TestFailure(result.describe())
    return result


def podman(run: Run, args: Sequence[str], timeout: float = 120,
           log_path: Optional[Path] = None, stdin: Optional[bytes] = None) -> Result:
    return run_cmd(["podman", *args], run.env, timeout, log_path=log_path, stdin=stdin)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def request(port: int, method: str, path: str, body: Optional[bytes] = None,
         headers: Optional[Mapping[str, str]] = None,
         timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- files

def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def make_wheel(dest: Path, name: str, version: str, files: Mapping[str, str]) -> Path:
    """A pure-Python wheel: files + NAME-VERSION.dist-info/{METADATA,WHEEL,RECORD}."""
    dist_info = f"{name}-{version}.dist-info"
    contents = {rel: text.encode() for rel, text in files.items()}
    contents[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").encode()
    contents[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: pyrt-container-test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n")
    record = "".join(f"{rel},{_record_hash(data)},{len(data)}\n"
                     for rel, data in contents.items())
    contents[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in contents.items():
            zf.writestr(rel, data)
    return path


def make_sdist(dest: Path, name: str, version: str, files: Mapping[str, str]) -> Path:
    """A source distribution NAME-VERSION.tar.gz holding files (rel -> text)."""
    root = f"{name}-{version}"
    contents = dict(files)
    contents["PKG-INFO"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    path = dest / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for rel, text in contents.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{root}/{rel}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return path


def write_tree(root: Path, files: Mapping[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    for rel, text in files.items():
        path = root / rel
        path.write_text(text)
        os.chmod(path, 0o644)


def mounts_below(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if point.startswith(prefix) or point == str(root):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def safe_rmtree(root: Path) -> None:
    """Removes root, never through a mount point below it (a failed debootstrap can leave
    /proc, /sys or a bind-mounted /dev there)."""
    if not root.exists():
        return
    for point in mounts_below(root):
        subprocess.run(["umount", "-l", point], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    left = mounts_below(root)
    if left:
        log(f"NOT removing {root}: still mounted below it: {', '.join(left)}")
        return
    shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- the base image

def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    stanza: dict[str, str] = {}
    key = ""
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, ""
        elif line[0] in " \t" and key:
            stanza[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            stanza[key] = value.strip()


def debian_mirror() -> str:
    """The URI apt itself uses for Debian 12 (SUITE), from /etc/apt/sources.list*."""
    override = os.environ.get("PYRT_DEBIAN_MIRROR")
    if override:
        return override
    apt = Path("/etc/apt")
    lists = [apt / "sources.list"] + sorted((apt / "sources.list.d").glob("*.list"))
    sources = sorted((apt / "sources.list.d").glob("*.sources"))
    seen: list[str] = []
    for path in sources:
        for stanza in _deb822_stanzas(path.read_text(errors="replace")):
            if stanza.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in stanza.get("types", "").split():
                continue
            uris = stanza.get("uris", "").split()
            seen += uris
            if SUITE in stanza.get("suites", "").split() and uris:
                return uris[0]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                seen.append(words[1])
                if words[2] == SUITE:
                    return words[1]
    raise TestFailure(f"no 'deb ... {SUITE}' source in /etc/apt/sources.list or "
                      f"/etc/apt/sources.list.d/ (URIs seen: {seen}); set PYRT_DEBIAN_MIRROR")


def ensure_base(run: Run) -> str:
    """The local Debian 12 base image: cached, else debootstrap + podman import."""
    if podman(run, ["image", "exists", BASE_IMAGE]).returncode == 0:
        return "cached"
    mirror = debian_mirror()
    rootfs = Path(tempfile.mkdtemp(prefix="pyrt-ct-rootfs-", dir="/var/tmp"))
    try:
        log(f"debootstrap --variant=minbase {SUITE} from {mirror} (a few minutes)")
        result = run_cmd(["debootstrap", "--variant=minbase",
                          "--include=" + ",".join(BASE_PACKAGES), SUITE, str(rootfs), mirror],
                         run.env, 1800, log_path=run.work / "debootstrap.log")
        if result.returncode != 0:
            raise TestFailure(f"debootstrap failed (log {run.work / 'debootstrap.log'}):\n"
                              + result.describe())
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "--exclude=./dev/*",
             "--exclude=./proc/*", "--exclude=./sys/*", "-c", "."],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=run.env)
        try:
            imported = subprocess.run(
                ["podman", "import",
                 "--change", f"ENV PATH={DEFAULT_PATH}",
                 "--change", 'CMD ["/bin/bash"]', "-", BASE_IMAGE],
                stdin=tar.stdout, capture_output=True, env=run.env, timeout=600)
        finally:
            if tar.stdout:
                tar.stdout.close()
            try:
                tar.wait(60)
            except subprocess.TimeoutExpired:
                tar.kill()
                tar.wait(10)
        if imported.returncode != 0 or tar.returncode != 0:
            raise TestFailure(f"podman import failed (tar exit {tar.returncode}, import exit "
                              f"{imported.returncode}): {imported.stderr.decode()[-3000:]}")
    finally:
        safe_rmtree(rootfs)
    return f"debootstrap from {mirror}"


# --------------------------------------------------------------------------- containers

def image_size(run: Run, ref: str) -> int:
    return int(expect_ok(podman(run, ["image", "inspect", "--format", "{{.Size}}", ref]))
               .stdout.strip())


def build_image(run: Run, tag: str, target: Optional[str], log_name: str) -> None:
    args = ["build", "--format", "docker", "--network=host", "--pull=never",
            "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", tag]
    if target:
        args += ["--target", target]
    result = podman(run, args + [str(REPO)], timeout=1200, log_path=run.work / log_name)
    if result.returncode != 0:
        raise TestFailure(f"podman build failed (log {run.work / log_name}):\n"
                          + result.describe(6000))


def build_sh(run: Run, image: str, fn: Path, wheels: Path, what: str) -> Result:
    """Seed step 2: `docker run --rm -v $(pwd):/usr/code/ -e ENTRYPOINT_NAME=index.py
    IMAGE /usr/local/src/build.sh`, offline, with pip pointed at the wheels folder."""
    return podman(run, ["run", "--rm", "--name", run.name(what), "--network=none",
                        "-v", f"{fn}:/usr/code/", "-v", f"{wheels}:/wheels:ro",
                        "-e", "PIP_NO_INDEX=1", "-e", "PIP_FIND_LINKS=/wheels",
                        "-e", "ENTRYPOINT_NAME=index.py",
                        image, "/usr/local/src/build.sh"], timeout=300)


def seed_tar(fn: Path) -> None:
    """Seed step 3, on the host: `tar -czvf ./code.tar.gz ./` (exit 1 accepted: the
    archive is written into the folder being read)."""
    result = run_cmd(["tar", "-czvf", "./code.tar.gz", "./"], os.environ, 120, cwd=fn)
    if result.returncode not in (0, 1) or not (fn / "code.tar.gz").is_file():
        raise TestFailure(result.describe())


@dataclass
class Server:
    name: str
    port: int
    proc: "subprocess.Popen[bytes]"
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def launch(run: Run, fn: Path, key: str, what: str) -> Server:
    """Seed step 4, in the foreground as the seed shows it, published on 127.0.0.1:
    `docker run -p 3000:3000 -e INTERNAL_RUNTIME_KEY=... --rm
    -v $(pwd)/code.tar.gz:/tmp/code.tar.gz IMAGE /usr/local/src/launch.sh`."""
    name = run.name(what)
    port = free_port()
    log_path = run.work / f"{what}.log"
    out = open(log_path, "wb")
    env = dict(run.env, INTERNAL_RUNTIME_KEY=key)
    proc = subprocess.Popen(
        ["podman", "run", "--name", name, "-p", f"{HOST}:{port}:3000",
         "-e", "INTERNAL_RUNTIME_KEY", "--rm", "-v", f"{fn}/code.tar.gz:/tmp/code.tar.gz",
         IMAGE, "/usr/local/src/launch.sh"],
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd="/")
    out.close()
    run.followers.append(proc)
    server = Server(name, port, proc, log_path)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise TestFailure(f"launch.sh exited with {proc.returncode} before answering:\n"
                              + server.logs())
        try:
            status, body = request(port, "GET", "/__health", timeout=2)
            if status == 200:
                return server
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise TestFailure("no 200 from /__health within 60 s:\n" + server.logs())
        time.sleep(0.2)


def stop(run: Run, server: Server) -> int:
    expect_ok(podman(run, ["stop", "-t", "10", server.name], timeout=60))
    try:
        return server.proc.wait(30)
    except subprocess.TimeoutExpired as exc:
        raise TestFailure("podman run did not return 30 s after podman stop:\n"
                          + server.logs()) from exc


def post(server: Server, key: str, payload: Any) -> tuple[int, bytes]:
    body = json.dumps({"file": "index.py", "path": "/usr/code", "env": {}, "timeout": 30,
                       "payload": payload, "headers": {}}).encode()
    return request(server.port, "POST", "/", body, {"x-internal-challenge": key,
                                                 "content-type": "application/json"})


def expect_json(status: int, body: bytes, want_status: int, server: Server) -> Any:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if status != want_status or data is None:
        raise TestFailure(f"expected {want_status} with JSON, got {status}: {body[:2000]!r}\n"
                          + server.logs())
    return data


def healthcheck(run: Run, server: Server) -> str:
    """`podman healthcheck run` until healthy (bounded): the image's HEALTHCHECK."""
    deadline = time.monotonic() + 30
    while True:
        result = podman(run, ["healthcheck", "run", server.name], timeout=30)
        if result.returncode == 0:
            status = expect_ok(podman(run, ["inspect", "--format", "{{.State.Health.Status}}",
                                            server.name])).stdout.strip()
            if status == "healthy":
                return status
        if time.monotonic() > deadline:
            raise TestFailure("podman healthcheck run never passed:\n" + result.describe()
                              + "\n" + server.logs())
        time.sleep(1)


# --------------------------------------------------------------------------- the test

def preflight(run: Run) -> str:
    versions = []
    for tool in (["podman", "--version"], ["debootstrap", "--version"], ["runc", "--version"]):
        result = run_cmd(tool, run.env, 60)
        if result.returncode != 0:
            raise TestFailure(f"{tool[0]} cannot run (sh tools/install-deps.sh podman runc "
                              f"debootstrap):\n" + result.describe())
        versions.append(result.stdout.splitlines()[0] if result.stdout else tool[0])
    if os.geteuid() != 0:
        raise TestFailure("the container test needs root (rootful podman, debootstrap)")
    info = podman(run, ["info", "--format", "{{.Host.OCIRuntime.Name}}"], timeout=60)
    if info.returncode != 0:
        raise TestFailure("podman cannot run here:\n" + info.describe())
    return "; ".join(versions)


def check_image(run: Run) -> str:
    config = json.loads(expect_ok(podman(run, ["image", "inspect", IMAGE])).stdout)[0]
    cfg = config.get("Config", {})
    if "3000/tcp" not in (cfg.get("ExposedPorts") or {}):
        raise TestFailure(f"EXPOSE 3000 missing: {cfg.get('ExposedPorts')}")
    # podman shows the health check at the top level, docker under Config
    check = config.get("Healthcheck") or cfg.get("Healthcheck") or {}
    test = check.get("Test") or []
    if not any("__health" in part and "__opr/health" in part for part in test):
        raise TestFailure(f"no HEALTHCHECK on /__health in the image: {check}"
                          " (built without --format docker?)")
    inside = expect_ok(podman(run, [
        "run", "--rm", "--name", run.name("inspect"), "--network=none", IMAGE, "sh", "-c",
        "stat -c '%U %G %a' /usr/code; id -u pyrt; command -v pyrt;"
        " ls /usr/local/src/build.sh /usr/local/src/launch.sh /usr/local/src/start.sh"
        " /usr/local/server/helpers/build.sh /usr/local/server/helpers/start.sh"
        " /usr/local/server/helpers/server.sh >/dev/null; pwd;"
        " command -v cc gcc || echo no-compiler"])).stdout.split("\n")
    if not inside[0].startswith("pyrt pyrt") or inside[1] == "0" or "no-compiler" not in inside \
            or "/usr/local/server" not in inside:
        raise TestFailure(f"unexpected image contents: {inside}")
    size, base = image_size(run, IMAGE), image_size(run, BASE_IMAGE)
    above = size - base
    note = (f"{size / 1e6:.1f} MB ({size / 2**20:.1f} MiB), base {base / 1e6:.1f} MB, "
            f"+{above / 2**20:.2f} MiB")
    if above > MAX_ABOVE_BASE:
        raise TestFailure(f"the image is {above / 2**20:.1f} MiB above its base (max 60): "
                          + note)
    return note


def seed_steps(run: Run, key: str) -> None:
    fn = run.work / "fn"
    wheels = run.work / "wheels"
    wheels.mkdir()
    os.chmod(wheels, 0o755)
    make_wheel(wheels, "pyrtdemo", "1.0", {"pyrtdemo/__init__.py": f"VALUE = {DEMO_VALUE!r}\n"})
    write_tree(fn, {"index.py": INDEX_PY, "requirements.txt": "pyrtdemo==1.0\n"})

    with Timed(run, "seed 2: build.sh (host folder owned by root, offline pip)") as t:
        result = expect_ok(build_sh(run, IMAGE, fn, wheels, "build"))
        site = list(fn.glob("runtime-env/lib/python3*/site-packages/pyrtdemo"))
        if not site or not (fn / "runtime-env" / "bin" / "python").exists():
            raise TestFailure("build.sh left no runtime-env with pyrtdemo in /usr/code:\n"
                              + result.describe())
        t.note = str(site[0].relative_to(fn))

    with Timed(run, "seed 3: tar -czvf ./code.tar.gz ./"):
        seed_tar(fn)

    with Timed(run, "seed 4: launch.sh until /__health answers 200") as t:
        server = launch(run, fn, key, "launch")
        t.note = f"127.0.0.1:{server.port}"

    with Timed(run, "requests: response, 401, non-root user code") as t:
        data = expect_json(*post(server, key, {"n": 1}), 200, server)
        if data.get("value") != DEMO_VALUE or data.get("payload") != {"n": 1}:
            raise TestFailure(f"unexpected response: {data}")
        if data["uid"] == 0 or data["euid"] == 0 or data["gid"] == 0 or 0 in data["groups"]:
            raise TestFailure(f"user code runs with root ids: {data}")
        # The zygote runs as --user pyrt; each worker as a uid of its own (no account)
        # in pyrt's group, from the range (50000 up): docs/operating.md, "The sandbox".
        if data["group"] != "pyrt" or not (data["user"] == "pyrt" or
                                           (data["user"] is None and data["uid"] >= 50000)):
            raise TestFailure(f"user code runs as {data['user']!r} uid {data['uid']} group "
                              f"{data['group']!r}, not pyrt's: {data}")
        for bad in ("wrong-" + key, ""):
            body = expect_json(*post(server, bad, {}), 401, server)
            if body != {"message": "Unauthorized", "code": 401}:
                raise TestFailure(f"401 body: {body}")
        t.note = f"user code as {data['user']} uid {data['uid']} gid {data['gid']}"

    with Timed(run, "podman healthcheck run") as t:
        t.note = healthcheck(run, server)

    with Timed(run, "podman stop (SIGTERM, graceful)") as t:
        rc = stop(run, server)
        if rc != 0:
            raise TestFailure(f"launch.sh container exited {rc} after SIGTERM:\n"
                              + server.logs())
        t.note = "exit 0"

    with Timed(run, "build.sh again: unchanged, folder owned by 4321:4321") as t:
        os.chown(fn, 4321, 4321)
        expect_ok(build_sh(run, IMAGE, fn, wheels, "rebuild"))
        owners = {(p.stat().st_uid, p.stat().st_gid)
                  for p in [fn / "runtime-env", fn / "__pycache__",
                            *fn.glob("runtime-env/lib/python3*/site-packages/pyrtdemo")]}
        user_file = (fn / "index.py").stat()
        if owners != {(4321, 4321)} or (user_file.st_uid, user_file.st_gid) != (0, 0):
            raise TestFailure(f"build outputs owned by {owners}, index.py by "
                              f"{user_file.st_uid}:{user_file.st_gid}")
        t.note = "runtime-env/ and __pycache__/ handed to 4321:4321"


def compiled_steps(run: Run, key: str) -> None:
    fn = run.work / "cfn"
    wheels = run.work / "cwheels"
    wheels.mkdir()
    os.chmod(wheels, 0o755)
    make_sdist(wheels, "pyrtcext", "1.0", {"pyproject.toml": CEXT_PYPROJECT,
                                           "setup.py": CEXT_SETUP_PY, "pyrtcext.c": CEXT_C})
    # pip builds the sdist (PEP 517) in an isolated environment with setuptools and wheel:
    # offline, they come from Debian's wheel packages (python3-setuptools-whl,
    # python3-wheel-whl) in the same find-links folder.
    for dist in ("setuptools", "wheel"):
        found = sorted(SETUPTOOLS_WHEELS.glob(f"{dist}-*-py3-none-any.whl"))
        if not found:
            raise TestFailure(f"no {dist} wheel in {SETUPTOOLS_WHEELS} "
                              f"(apt-get install python3-{dist}-whl)")
        shutil.copy(found[-1], wheels / found[-1].name)
    write_tree(fn, {"index.py": CEXT_INDEX_PY, "requirements.txt": "pyrtcext==1.0\n"})

    with Timed(run, "compiled dep: build.sh in the runtime image fails, with its hint") as t:
        result = build_sh(run, IMAGE, fn, wheels, "cbuild-fail")
        if result.returncode == 0 or "--target toolchain" not in result.stderr:
            raise TestFailure("expected build.sh to fail without a compiler, with the "
                              "toolchain hint:\n" + result.describe())
        t.note = "no compiler in the runtime image"

    with Timed(run, "podman build --target toolchain") as t:
        build_image(run, TOOLCHAIN_IMAGE, "toolchain", "build-toolchain.log")
        t.note = f"{image_size(run, TOOLCHAIN_IMAGE) / 1e6:.0f} MB"

    with Timed(run, "compiled dep: build.sh in the toolchain image (sdist, C)"):
        result = expect_ok(build_sh(run, TOOLCHAIN_IMAGE, fn, wheels, "cbuild"))
        if not list(fn.glob("runtime-env/lib/python3*/site-packages/pyrtcext*.so")):
            raise TestFailure("no compiled pyrtcext in runtime-env:\n" + result.describe())

    with Timed(run, "compiled dep: tar, launch.sh with the runtime image, request") as t:
        seed_tar(fn)
        server = launch(run, fn, key, "claunch")
        data = expect_json(*post(server, key, {"a": 40, "b": 2}), 200, server)
        if data.get("sum") != 42:
            raise TestFailure(f"unexpected response: {data}")
        rc = stop(run, server)
        if rc != 0:
            raise TestFailure(f"exited {rc} after SIGTERM:\n" + server.logs())
        t.note = f"pyrtcext.add(40, 2) = 42 from {Path(data['module']).name}"


def cleanup(run: Run) -> None:
    for name in reversed(run.containers):
        subprocess.run(["podman", "rm", "-f", "-t", "5", "--ignore", name], env=run.env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    for proc in run.followers:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    left = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}",
                           "--filter", f"name={run.prefix}-"], env=run.env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60).stdout.split()
    if left:
        log(f"containers left behind: {left}")
        raise TestFailure(f"containers left behind: {left}")


def _terminate(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    work = Path(tempfile.mkdtemp(prefix="pyrt-ct-"))
    os.chmod(work, 0o755)
    conf = work / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["CONTAINERS_CONF"] = str(conf)
    run = Run(env=env, work=work)
    key = secrets.token_hex(16)
    failure: Optional[str] = None
    start = time.monotonic()
    try:
        with Timed(run, "preflight: podman, runc, debootstrap") as t:
            t.note = preflight(run)
        with Timed(run, f"base image {BASE_IMAGE}") as t:
            t.note = ensure_base(run)
        with Timed(run, f"seed 1: podman build -t {IMAGE} --build-arg BASE_IMAGE=...") as t:
            build_image(run, IMAGE, None, "build-image.log")
            t.note = check_image(run)
        seed_steps(run, key)
        import executor_steps
        executor_steps.v5_steps(run, run.work / "wheels")
        executor_steps.v2_steps(run, run.work / "wheels", key)
        executor_steps.seed_any_folder_steps(run, run.work / "wheels", key)
        compiled_steps(run, key)
    except TestFailure as exc:
        failure = str(exc)
    except KeyboardInterrupt as exc:
        failure = f"interrupted ({exc})"
    finally:
        try:
            cleanup(run)
        except TestFailure as exc:
            failure = failure or str(exc)
        if os.environ.get("PYRT_CT_KEEP") == "1":
            log(f"work folder kept: {work}")
        elif failure:  # keep the logs only
            for sub in work.iterdir():
                if sub.is_dir():
                    shutil.rmtree(sub, ignore_errors=True)
            log(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\ncontainer-test: step times", flush=True)
    for step in run.steps:
        print(f"  {step.seconds:7.1f} s  {step.name}  {step.note}".rstrip())
    print(f"  {time.monotonic() - start:7.1f} s  total")
    if failure:
        print(f"\ncontainer-test: FAIL\n{failure}", flush=True)
        return 1
    print("\ncontainer-test: PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
