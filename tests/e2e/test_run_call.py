"""`pyrt run` (one execution, locally, through the zygote and a worker) and `pyrt call`
(one execution request to a running server): what they print, where, and their exit
status; the same errors and limits as the server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import pytest

from conftest import (KEY, WRONG_KEY, ServerFactory, alive, clean_env, descendants,
                      free_port, make_code_dir, run_bounded)

SANITIZER = bool(os.environ.get("PYRT_SANITIZER"))


@pytest.fixture(scope="module")
def code() -> Iterator[Path]:
    """A code folder with every test function (tests/e2e/functions/*)."""
    path = make_code_dir()
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def run(args: Sequence[str], env: Optional[dict[str, str]] = None,
        timeout: float = 60.0) -> tuple[int, str, str]:
    full_env = clean_env(None)
    full_env.update(env or {})
    return run_bounded(list(args), full_env, "/", timeout)


def answer(stdout: str) -> Any:
    return json.loads(stdout)


# --------------------------------------------------------------------------- pyrt run

def test_run_prints_the_body_on_stdout_and_the_status_on_stderr(code: Path) -> None:
    rc, out, err = run(["run", str(code), "--file", "echo/index.py", "--payload", '{"a": 1}',
                        "--env", "K=v", "--env", "EMPTY=", "--header", "h=v=w"])
    assert rc == 0, err
    body = answer(out)
    assert body["payload"] == {"a": 1}
    assert body["env"] == {"K": "v", "EMPTY": ""}
    assert body["headers"] == {"h": "v=w"}
    assert "status 200" in err and "req=" in err


def test_run_payload_is_any_json_value(code: Path, tmp_path: Path) -> None:
    for text, value in (('"text"', "text"), ("[1, 2]", [1, 2]), ("null", None), ("3.5", 3.5)):
        rc, out, err = run(["run", str(code), "-f", "echo/index.py", "--payload", text])
        assert rc == 0, err
        assert answer(out)["payload"] == value
    # No --payload: the contract's default, {}.
    rc, out, err = run(["run", str(code), "-f", "echo/index.py"])
    assert rc == 0, err
    assert answer(out)["payload"] == {}


def test_run_payload_from_a_file(code: Path, tmp_path: Path) -> None:
    payload = {"list": list(range(1000)), "text": "é" * 100}
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payload))
    rc, out, err = run(["run", str(code), "-f", "echo/index.py", "--payload", f"@{path}"])
    assert rc == 0, err
    assert answer(out)["payload"] == payload


@pytest.mark.parametrize("args, flag", [
    (["--payload", "not json"], "--payload"),
    (["--payload", "@/nonexistent/payload.json"], "--payload @/nonexistent/payload.json"),
    (["--env", "NOEQUALS"], "--env NOEQUALS"),
    (["--header", "=v"], "--header =v"),
    (["--timeout", "0"], "--timeout 0"),
    (["--timeout", "soon"], "--timeout soon"),
])
def test_run_refuses_bad_flags_naming_them(code: Path, args: list[str], flag: str) -> None:
    rc, out, err = run(["run", str(code), "-f", "echo/index.py", *args])
    assert rc == 2, err
    assert out == ""
    assert err.startswith(f"pyrt run: {flag}"), err


def test_run_shows_the_traceback_on_stderr_and_exits_non_zero(code: Path) -> None:
    rc, out, err = run(["run", str(code), "-f", "raises/index.py",
                        "--payload", '{"kind": "value"}'])
    assert rc == 1
    body = answer(out)
    assert body["code"] == 500 and "ValueError: boom-value-error" in body["message"]
    # The traceback as text, not as an escaped JSON string.
    assert "Traceback (most recent call last):\n" in err
    assert "ValueError: boom-value-error\n" in err
    assert "status 500" in err


def test_run_keeps_function_output_off_stdout(code: Path) -> None:
    for how in ("print", "stderr", "os_write", "child"):
        marker = f"marker-{how}-7f3a"
        rc, out, err = run(["run", str(code), "-f", "output/index.py",
                            "--payload", json.dumps({"how": how, "marker": marker})])
        assert rc == 0, err
        assert out == "done"
        assert marker in err


def test_run_enforces_the_timeout(code: Path) -> None:
    start = time.monotonic()
    rc, out, err = run(["run", str(code), "-f", "hang/index.py", "--payload", '{"how": "spin"}',
                        "--timeout", "1"], timeout=30)
    elapsed = time.monotonic() - start
    assert rc == 1
    assert answer(out) == {"message": "Execution timed out after 1 seconds", "code": 500}
    assert elapsed < 4.0, f"took {elapsed:.2f} s for a 1 s timeout"


def test_run_reports_a_worker_that_dies(code: Path) -> None:
    rc, out, err = run(["run", str(code), "-f", "crash/index.py", "--payload", '{"how": "exit"}'])
    assert rc == 1
    assert answer(out) == {"message": "worker exited with status 3", "code": 500}


def test_run_answers_the_server_errors(code: Path) -> None:
    rc, out, _ = run(["run", str(code), "-f", "nosuchfile.py"])
    assert rc == 1
    body = answer(out)
    assert body["code"] == 500 and "nosuchfile.py" in body["message"]
    rc, out, _ = run(["run", str(code), "-f", "nomain/index.py"])
    assert rc == 1
    assert "function not found" in answer(out)["message"]


def test_run_uses_the_entry_point(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("def main(req, res):\n    return res.send('main.py')\n")
    (tmp_path / "app.py").write_text("def main(req, res):\n    return res.send('app.py')\n")
    rc, out, err = run(["run", str(tmp_path)])
    assert (rc, out) == (0, "main.py"), err
    rc, out, err = run(["run", str(tmp_path), "--entrypoint", "app.py"])
    assert (rc, out) == (0, "app.py"), err
    rc, out, err = run(["run", str(tmp_path)], env={"ENTRYPOINT_NAME": "app.py"})
    assert (rc, out) == (0, "app.py"), err


def test_run_hides_the_key_from_user_code(tmp_path: Path) -> None:
    (tmp_path / "index.py").write_text(
        "import os\n"
        "def main(req, res):\n"
        "    environ = open('/proc/self/environ', 'rb').read()\n"
        "    return res.json({'env': 'INTERNAL_RUNTIME_KEY' in os.environ,\n"
        "                     'proc': b'run-key-5150' in environ})\n")
    rc, out, err = run(["run", str(tmp_path)], env={"INTERNAL_RUNTIME_KEY": "run-key-5150"})
    assert rc == 0, err
    assert answer(out) == {"env": False, "proc": False}


def test_run_leaves_no_process_behind(tmp_path: Path) -> None:
    (tmp_path / "index.py").write_text(
        "import subprocess\n"
        "def main(req, res):\n"
        "    subprocess.Popen(['sleep', '31.4159'])\n"
        "    return res.send('ok')\n")
    rc, out, err = run(["run", str(tmp_path)])
    assert (rc, out) == (0, "ok"), err
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [pid for pid in os.listdir("/proc") if pid.isdigit()
                and _cmdline(int(pid)) == "sleep 31.4159"]
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"the function's child outlived pyrt run: {left}"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def test_run_help_lists_the_flags() -> None:
    rc, out, _ = run(["run", "--help"])
    assert rc == 0
    for flag in ("--payload", "--env", "--header", "--timeout", "--file"):
        assert flag in out


# --------------------------------------------------------------------------- pyrt call

@pytest.fixture(scope="module")
def served(module_factory: ServerFactory, code: Path) -> Any:
    return module_factory(code_dir=code)


def call(args: Sequence[str], key: Optional[str] = KEY,
         timeout: float = 60.0) -> tuple[int, str, str]:
    env = clean_env(None)
    if key is not None:
        env["INTERNAL_RUNTIME_KEY"] = key
    return run_bounded(["call", *args], env, "/", timeout)


def test_call_sends_the_request_an_executor_sends(served: Any) -> None:
    url = f"http://127.0.0.1:{served.port}/any/path?x=1"
    rc, out, err = call([url, "-f", "echo/index.py", "--payload", '{"a": [1, 2]}',
                         "-e", "ENV1=x", "-H", "h=v"])
    assert rc == 0, err
    body = answer(out)
    assert body["payload"] == {"a": [1, 2]}
    assert body["env"] == {"ENV1": "x"} and body["headers"] == {"h": "v"}
    assert "status 200" in err
    req_id = err.rsplit("req=", 1)[1].strip()
    assert served.access_lines(req_id), "the request id shown is the server's"


def test_call_key_from_flag_or_environment(served: Any) -> None:
    url = f"http://127.0.0.1:{served.port}/"
    rc, out, err = call([url, "--key", KEY, "-f", "echo/index.py"], key=None)
    assert rc == 0, err
    rc, out, err = call([url, "--key", WRONG_KEY], key=None)
    assert rc == 1
    assert answer(out) == {"message": "Unauthorized", "code": 401}
    assert "status 401" in err
    rc, out, err = call([url], key=None)
    assert rc == 2 and "INTERNAL_RUNTIME_KEY" in err


def test_call_shows_errors_like_run(served: Any) -> None:
    url = f"http://127.0.0.1:{served.port}/"
    rc, out, err = call([url, "-f", "raises/index.py", "--payload", '{"kind": "value"}'])
    assert rc == 1
    assert "ValueError: boom-value-error\n" in err
    rc, out, err = call([url, "-f", "hang/index.py", "--payload", '{"how": "spin"}',
                         "--timeout", "0.5"])
    assert rc == 1
    assert answer(out)["message"] == "Execution timed out after 0.5 seconds"


def test_call_reports_what_went_wrong_with_the_connection() -> None:
    port = free_port()
    rc, out, err = call([f"http://127.0.0.1:{port}/"])
    assert rc == 1 and out == ""
    assert err.startswith("pyrt call: cannot connect to 127.0.0.1:") and "refused" in err
    for url in ("127.0.0.1:3000", "ftp://127.0.0.1/", "http://"):
        rc, out, err = call([url])
        assert rc == 2, (url, err)
        assert "expected an http:// URL" in err


def test_call_sends_the_port_in_host() -> None:
    """pyrt call's Host header names the port, as HTTP/1.1 asks."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve_once() -> None:
        conn, _ = listener.accept()
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        seen.append(data)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()

    t = threading.Thread(target=serve_once, daemon=True)
    t.start()
    rc, out, err = run_bounded(["call", f"http://127.0.0.1:{port}/x", "--key", "k"],
                               clean_env(None), "/", 30)
    t.join(5)
    listener.close()
    assert (rc, out) == (0, "ok"), err
    assert f"\r\nHost: 127.0.0.1:{port}\r\n".encode() in seen[0]
