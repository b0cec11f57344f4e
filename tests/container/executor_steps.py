"""The image under the open-runtimes executor, and the seed's build on any folder: steps of
`make test-container` (container_test.py runs them after the seed's steps).

- v5, as open-runtimes/executor's Docker runner does it: a build container started with
  `tail -f /dev/null`, the build `docker exec`'d through `script(1)` with Appwrite's
  command (`tar -zxf /tmp/code.tar.gz -C /mnt/code && helpers/build.sh '<install>'`), the
  output archive checked; then a start container, read-only with the executor's mounts
  (/tmp, /mnt/code, /mnt/logs, /tmp/logging, and /mnt/telemetry as open-runtimes' test
  harness mounts it), started with `cp ... && nohup helpers/start.sh "bash
  helpers/server.sh"`, without OPEN_RUNTIMES_ENTRYPOINT (the build's record names it);
  requests with the executor's headers; the log files read from the mounted folder;
  /__opr/health and /__opr/timings; the start line; `script` present. Once with
  code.tar.gz, once with code.tar.
- v2: the build through /usr/local/src/build.sh as the executor's v2 command runs it,
  then the image's default command, read-only, and the executor's v2 request.
- The seed's build.sh, tar and launch.sh on `0700` folders owned by root and by another
  uid: the entry point asserts at import that it does not run as root.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import os
import secrets
import shutil
import tarfile
import time
from pathlib import Path
from typing import Callable, Mapping, Optional

import container_test as ct

SECRET = "v5-" + secrets.token_hex(12)
EXECUTOR_HEADERS = {
    "x-open-runtimes-secret": SECRET,
    "Authorization": "Basic " + base64.b64encode(f"opr:{SECRET}".encode()).decode(),
    "x-open-runtimes-timeout": "15",
    "x-open-runtimes-logging": "enabled",
}

V5_HANDLER = '''\
import os

import pyrtdemo

if os.getuid() == 0:
    raise RuntimeError("user code imported as root")


async def main(context):
    context.log("context line", {"k": 1})
    print("native line")
    if context.req.path == "/fail":
        raise RuntimeError("failing on purpose")
    return context.res.json({
        "value": pyrtdemo.VALUE,
        "uid": os.getuid(),
        "path": context.req.path,
        "query": context.req.query,
        "headers": context.req.headers,
        "secret_in_env": "OPEN_RUNTIMES_SECRET" in os.environ,
    })
'''

V2_MAIN = '''\
import os

import pyrtdemo


def main(req, res):
    print("printed by v2")
    res.json({"value": pyrtdemo.VALUE, "uid": os.getuid(), "payload": req.payload,
              "variables": req.variables})
'''

SEED_ANY_INDEX = '''\
import os

if os.getuid() == 0:
    raise RuntimeError("user code imported as root")


def main(req, res):
    return res.json({"uid": os.getuid(), "cwd": os.getcwd()})
'''


def fetch(port: int, method: str, path: str, body: bytes = b"",
          headers: Optional[Mapping[str, str]] = None,
          timeout: float = 20) -> tuple[int, dict[str, list[str]], bytes]:
    """One request; the answer's headers as lists (repeated ones kept), names lower-case."""
    conn = http.client.HTTPConnection(ct.HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body or None, headers=dict(headers or {}))
        resp = conn.getresponse()
        got: dict[str, list[str]] = {}
        for name, value in resp.getheaders():
            got.setdefault(name.lower(), []).append(value)
        return resp.status, got, resp.read()
    finally:
        conn.close()


def folder(run: ct.Run, name: str, mode: int = 0o755) -> Path:
    path = run.work / name
    path.mkdir(parents=True)
    os.chmod(path, mode)
    return path


def tar_gz(source: Path, dest: Path) -> None:
    """The source archive the executor mounts: the folder's contents, members ./..."""
    with tarfile.open(dest, "w:gz") as tar:
        for item in sorted(source.iterdir()):
            tar.add(item, arcname=f"./{item.name}")


def members(archive: Path) -> dict[str, bytes]:
    """Names of a build archive (gzip or plain), and the .open-runtimes record."""
    with tarfile.open(archive, "r:*") as tar:
        names = {m.name.removeprefix("./"): b"" for m in tar.getmembers()}
        record = tar.extractfile("./.open-runtimes")
        if record is not None:
            names[".open-runtimes"] = record.read()
    return names


def wait_for(port: int, path: str, what: str, logs: Callable[[], str],
             seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            status, _, _ = fetch(port, "GET", path, timeout=2)
            if status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise ct.TestFailure(f"{what}: no 200 from {path} within {seconds:.0f} s:\n"
                                 + logs())
        time.sleep(0.3)


def container_logs(run: ct.Run, name: str) -> str:
    result = ct.podman(run, ["logs", name], timeout=30)
    return (result.stdout + result.stderr)[-6000:]


def remove(run: ct.Run, name: str) -> None:
    ct.podman(run, ["rm", "-f", "-t", "5", "--ignore", name], timeout=60)


# ------------------------------------------------------------------------------ v5

def v5_build(run: ct.Run, wheels: Path, entry: str) -> Path:
    """The executor's v5 build; returns the folder holding code.tar.gz."""
    source = folder(run, "v5-source")
    ct.write_tree(source, {entry: V5_HANDLER, "requirements.txt": "pyrtdemo==1.0\n"})
    mounted_tmp = folder(run, "v5-build-tmp", 0o777)
    tar_gz(source, mounted_tmp / "code.tar.gz")
    out = folder(run, "v5-build-out", 0o777)
    logging = folder(run, "v5-build-logging", 0o777)
    name = run.name("v5-build")
    ct.expect_ok(ct.podman(run, [
        "run", "-d", "--name", name, "--network=none",
        "-v", f"{mounted_tmp}:/tmp:rw", "-v", f"{out}:/mnt/code:rw",
        "-v", f"{logging}:/tmp/logging:rw", "-v", f"{wheels}:/wheels:ro",
        "-e", f"OPEN_RUNTIMES_SECRET={SECRET}", "-e", f"OPEN_RUNTIMES_ENTRYPOINT={entry}",
        "-e", "OPEN_RUNTIMES_CPUS=1", "-e", "OPEN_RUNTIMES_MEMORY=512",
        "-e", "PIP_NO_INDEX=1", "-e", "PIP_FIND_LINKS=/wheels",
        ct.IMAGE, "tail", "-f", "/dev/null"]))
    # The executor's getBuildCommands for v5, with Appwrite's command for Python.
    command = ("tar -zxf /tmp/code.tar.gz -C /mnt/code && helpers/build.sh "
               "'pip install --no-cache-dir -r requirements.txt'")
    script = ("mkdir -p /tmp/logging && touch /tmp/logging/timings.txt && "
              "touch /tmp/logging/logs.txt && script --log-out /tmp/logging/logs.txt --flush "
              "--log-timing /tmp/logging/timings.txt --return --quiet --command \""
              + command.replace('"', '\\"') + "\"; status=$?; if [ $status -ne 0 ]; then "
              "echo \"Build command exited with code $status.\"; fi; exit $status")
    result = ct.podman(run, ["exec", name, "bash", "-c", script], timeout=600)
    build_log = (logging / "logs.txt").read_text(errors="replace")
    remove(run, name)
    if result.returncode != 0:
        raise ct.TestFailure("the v5 build failed:\n" + result.describe() + "\n" + build_log)
    if "Build finished." not in build_log or "pyrtdemo" not in build_log:
        raise ct.TestFailure("the build log (script's) misses the build's output:\n"
                             + build_log)
    archive = out / "code.tar.gz"
    names = members(archive)
    if f"OPEN_RUNTIMES_ENTRYPOINT={entry}\n".encode() != names.get(".open-runtimes"):
        raise ct.TestFailure(f".open-runtimes in the archive: {names.get('.open-runtimes')!r}")
    if not any(n.startswith("runtime-env/lib/") and n.endswith("/pyrtdemo/__init__.py")
               for n in names) or "code.tar.gz" in names:
        raise ct.TestFailure(f"unexpected archive members: {sorted(names)[:40]}")
    return out


def v5_start(run: ct.Run, archive: Path, as_name: str, what: str) -> tuple[str, int, Path, Path]:
    """A start container as the executor makes it (read-only here); returns its name, port,
    logs folder and telemetry folder once /__opr/health answers."""
    mounted_tmp = folder(run, f"{what}-tmp", 0o777)
    shutil.copy(archive, mounted_tmp / as_name)
    code = folder(run, f"{what}-code", 0o777)
    logs = folder(run, f"{what}-logs", 0o777)
    logging = folder(run, f"{what}-logging", 0o777)
    telemetry = folder(run, f"{what}-telemetry", 0o777)
    (telemetry / "timings.txt").write_text("local_download=0.1\nremote_download=0.2\n")
    name = run.name(what)
    port = ct.free_port()
    ct.expect_ok(ct.podman(run, [
        "run", "-d", "--name", name, "--read-only", "-p", f"{ct.HOST}:{port}:3000",
        "-v", f"{mounted_tmp}:/tmp:rw", "-v", f"{code}:/mnt/code:rw",
        "-v", f"{logs}:/mnt/logs:rw", "-v", f"{logging}:/tmp/logging:rw",
        "-v", f"{telemetry}:/mnt/telemetry:rw",
        "-e", f"OPEN_RUNTIMES_SECRET={SECRET}", "-e", "OPEN_RUNTIMES_CPUS=1",
        "-e", "OPEN_RUNTIMES_HEADERS={\"x-forced\":\"yes\"}", "-e", "CUSTOM_ENV_VAR=custom",
        "--entrypoint", "bash", ct.IMAGE, "-c",
        f"cp /tmp/{as_name} /mnt/code/{as_name} && nohup helpers/start.sh "
        "\"bash helpers/server.sh\""]))
    wait_for(port, "/__opr/health", what, lambda: container_logs(run, name))
    return name, port, logs, telemetry


def v5_requests(run: ct.Run, name: str, port: int, logs: Path, telemetry: Path) -> str:
    headers = dict(EXECUTOR_HEADERS, **{"x-open-runtimes-log-id": "ct-ok"})
    status, got, body = fetch(port, "GET", "/hello?x=1", headers=headers)
    if status != 200:
        raise ct.TestFailure(f"v5 execution: {status} {body[:500]!r}\n"
                             + container_logs(run, name))
    data = json.loads(body)
    seen = data["headers"]
    if data["value"] != ct.DEMO_VALUE or data["path"] != "/hello" or data["query"] != {"x": "1"}:
        raise ct.TestFailure(f"v5 answer: {data}")
    if data["uid"] == 0 or data["secret_in_env"] or "authorization" in seen or \
            any(k.startswith("x-open-runtimes-") for k in seen) or seen.get("x-forced") != "yes":
        raise ct.TestFailure(f"v5 user code saw: {data}")
    if got.get("x-open-runtimes-log-id") != ["ct-ok"] or \
            got.get("content-type") != ["application/json; charset=utf-8"]:
        raise ct.TestFailure(f"v5 answer headers: {got}")
    # As the executor does: read both files, then delete them.
    text = (logs / "ct-ok_logs.log").read_text()
    errors = (logs / "ct-ok_errors.log").read_text()
    if 'context line {"k":1}' not in text or "native line" not in text or errors:
        raise ct.TestFailure(f"log files: logs {text!r} errors {errors!r}")

    headers["x-open-runtimes-log-id"] = "ct-fail"
    status, got, body = fetch(port, "POST", "/fail", b"data", headers)
    errors = (logs / "ct-fail_errors.log").read_text()
    if status != 500 or body or "RuntimeError: failing on purpose" not in errors:
        raise ct.TestFailure(f"v5 exception: {status} {body!r}, errors file {errors!r}")
    status, _, body = fetch(port, "GET", "/", headers=dict(EXECUTOR_HEADERS, **{
        "x-open-runtimes-secret": "wrong"}))
    if status != 500 or b"Unauthorized" not in body:
        raise ct.TestFailure(f"v5 wrong secret: {status} {body!r}")
    status, _, body = fetch(port, "GET", "/__opr/timings")
    timings = dict(line.split("=", 1) for line in body.decode().split())
    if status != 200 or not {"local_download", "extract", "prepare", "startup"} <= set(timings):
        raise ct.TestFailure(f"/__opr/timings: {status} {body!r}")
    if (telemetry / "timings.txt").read_text() != body.decode():
        raise ct.TestFailure("/__opr/timings is not the mounted telemetry file")
    if "HTTP server successfully started!" not in container_logs(run, name):
        raise ct.TestFailure("no start line in the container's output:\n"
                             + container_logs(run, name))
    usage = ct.podman(run, ["exec", name, "sh", "-c", "script --help"], timeout=30)
    if "Usage" not in usage.stdout + usage.stderr:
        raise ct.TestFailure("no script(1) in the image:\n" + usage.describe())
    return f"startup={timings['startup']} s extract={timings['extract']} s"


def v5_steps(run: ct.Run, wheels: Path) -> None:
    entry = "handler.py"  # not a default name: start finds it in the build's record
    with ct.Timed(run, "v5 build: tail -f container, script + helpers/build.sh") as t:
        out = v5_build(run, wheels, entry)
        t.note = f"{(out / 'code.tar.gz').stat().st_size / 1e6:.1f} MB code.tar.gz"
    with ct.Timed(run, "v5 start (code.tar.gz, read-only) until /__opr/health") as t:
        name, port, logs, telemetry = v5_start(run, out / "code.tar.gz", "code.tar.gz",
                                               "v5-start")
    with ct.Timed(run, "v5 requests: executor headers, log files, timings") as t:
        t.note = v5_requests(run, name, port, logs, telemetry)
        remove(run, name)
    with ct.Timed(run, "v5 start (code.tar) and one execution") as t:
        plain = run.work / "code.tar"
        plain.write_bytes(gzip.decompress((out / "code.tar.gz").read_bytes()))
        name, port, logs, _ = v5_start(run, plain, "code.tar", "v5-start-tar")
        status, _, body = fetch(port, "GET", "/tar", headers=EXECUTOR_HEADERS)
        remove(run, name)
        if status != 200 or json.loads(body)["path"] != "/tar":
            raise ct.TestFailure(f"v5 from code.tar: {status} {body[:300]!r}")
        t.note = "200"


# ------------------------------------------------------------------------------ v2

def v2_steps(run: ct.Run, wheels: Path, key: str) -> None:
    with ct.Timed(run, "v2 build: /usr/local/src/build.sh as the executor's v2 command") as t:
        source = folder(run, "v2-source")
        ct.write_tree(source, {"main.py": V2_MAIN, "requirements.txt": "pyrtdemo==1.0\n"})
        mounted_tmp = folder(run, "v2-build-tmp", 0o777)
        tar_gz(source, mounted_tmp / "code.tar.gz")
        out = folder(run, "v2-build-out", 0o777)
        name = run.name("v2-build")
        ct.expect_ok(ct.podman(run, [
            "run", "-d", "--name", name, "--network=none", "-w", "/usr/code",
            "-v", f"{mounted_tmp}:/tmp:rw", "-v", f"{out}:/usr/code:rw",
            "-v", f"{wheels}:/wheels:ro", "-e", f"INTERNAL_RUNTIME_KEY={key}",
            "-e", "INTERNAL_RUNTIME_ENTRYPOINT=main.py",
            "-e", "PIP_NO_INDEX=1", "-e", "PIP_FIND_LINKS=/wheels",
            ct.IMAGE, "tail", "-f", "/dev/null"]))
        command = ("tar -zxf /tmp/code.tar.gz -C /usr/code && cd /usr/local/src/ && ./build.sh")
        result = ct.podman(run, ["exec", name, "sh", "-c",
                                 "touch /var/tmp/logs.txt && (" + command + ") >> "
                                 "/var/tmp/logs.txt 2>&1; status=$?; cat /var/tmp/logs.txt; "
                                 "exit $status"], timeout=600)
        remove(run, name)
        if result.returncode != 0 or not (out / "code.tar.gz").is_file():
            raise ct.TestFailure("the v2 build failed:\n" + result.describe())
        t.note = f"{(out / 'code.tar.gz').stat().st_size / 1e6:.1f} MB code.tar.gz"

    with ct.Timed(run, "v2 start: the image's command, read-only; the executor's request") as t:
        start_tmp = folder(run, "v2-start-tmp", 0o777)
        shutil.copy(out / "code.tar.gz", start_tmp / "code.tar.gz")
        code = folder(run, "v2-start-code", 0o777)
        name = run.name("v2-start")
        port = ct.free_port()
        ct.expect_ok(ct.podman(run, [
            "run", "-d", "--name", name, "--read-only", "-w", "/usr/code",
            "-p", f"{ct.HOST}:{port}:3000", "-v", f"{start_tmp}:/tmp:rw",
            "-v", f"{code}:/usr/code:rw", "-e", f"INTERNAL_RUNTIME_KEY={key}",
            "-e", "INTERNAL_RUNTIME_ENTRYPOINT=main.py", ct.IMAGE]))
        wait_for(port, "/__health", "v2 start", lambda: container_logs(run, name))
        body = json.dumps({"variables": {"A": "1"}, "payload": "hello", "headers": {}},
                          separators=(",", ":")).encode()
        status, _, answer = fetch(port, "POST", "/", body, {
            "Content-Type": "application/json", "x-internal-challenge": key, "host": "null"})
        logs = container_logs(run, name)
        remove(run, name)
        envelope = json.loads(answer) if status == 200 else {}
        response = envelope.get("response") or {}
        if status != 200 or response.get("value") != ct.DEMO_VALUE or \
                response.get("payload") != "hello" or response.get("variables") != {"A": "1"} \
                or envelope.get("stdout") != "printed by v2\n" or response.get("uid") == 0:
            raise ct.TestFailure(f"v2 answer: {status} {answer[:500]!r}\n{logs}")
        t.note = f"envelope {sorted(envelope)}, user code as uid {response['uid']}"


# ---------------------------------------------------- the seed's commands, any folder

def seed_any_folder_steps(run: ct.Run, wheels: Path, key: str) -> None:
    for owner in (0, 4321):
        label = f"0700 folder of uid {owner}"
        with ct.Timed(run, f"seed build.sh, tar, launch.sh: {label}") as t:
            fn = folder(run, f"any-{owner}", 0o700)
            ct.write_tree(fn, {"index.py": SEED_ANY_INDEX, "requirements.txt": "pyrtdemo==1.0\n"})
            os.chmod(fn, 0o700)
            for path in [fn, *fn.iterdir()]:
                os.chown(path, owner, owner)
            result = ct.build_sh(run, ct.IMAGE, fn, wheels, f"any-build-{owner}")
            if result.returncode != 0:
                raise ct.TestFailure(f"build.sh on a {label}:\n" + result.describe())
            env_owner = (fn / "runtime-env").stat().st_uid
            if env_owner != owner or (fn / "index.py").stat().st_uid != owner:
                raise ct.TestFailure(f"runtime-env owned by {env_owner}, not {owner}")
            ct.seed_tar(fn)
            server = ct.launch(run, fn, key, f"any-launch-{owner}")
            data = ct.expect_json(*ct.post(server, key, {}), 200, server)
            ct.stop(run, server)
            if data.get("uid") in (0, None):
                raise ct.TestFailure(f"served as {data}")
            t.note = f"built and served; user code as uid {data['uid']}"
