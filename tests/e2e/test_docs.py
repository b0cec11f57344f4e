"""The documentation runs: every shell block in README.md and docs/*.md, as a reader
pastes them.

A shell block is a fenced block whose info string is `sh`, `bash` or `shell`; other
blocks (json, python, text, console, ...) are not run. The line right before a block's
opening fence may mark it:

- `<!-- not-runnable: REASON -->`: skipped (REASON is required and is reported);
- `<!-- background: URL -->`: started in the background, in its own session; the file
  goes on once GET URL answers 200 (bounded), and the block is stopped at the end of
  the file. The README's `make run` is such a block.

The runnable blocks of one file run in order in one `bash -euo pipefail` process, in
its own session, from the repository root, with a clean environment (no PIP_*, PYRT_*,
PYTHON* or make variables, Debian's PATH, HOME a fresh folder, PYRT_HOST=127.0.0.1 so
that every server a block starts listens on loopback only). Each block is preceded by
`echo '### docs-block FILE:LINE'`, so a failure names its block. At the end (or on a
failure or the time limit) every process of the file's sessions gets SIGTERM, then
SIGKILL after a grace period; nothing may be left listening on port 3000, which must
also be free before a file starts.

`MIN_RUN` says, per file, how many blocks must run at least: deleting blocks or
marking them not-runnable is noticed.

Run: `PYRT_BIN=$PWD/build/pyrt /usr/bin/python3 -m pytest tests/e2e/test_docs.py -q
-p no:cacheprovider`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

from conftest import REPO, proc_cmdline

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("PYRT_SANITIZER")),
    reason="the docs run the normal build: `make run` builds build/pyrt",
)

# The least number of blocks that must run in each file.
MIN_RUN: dict[str, int] = {
    "README.md": 8,
    "docs/architecture.md": 1,
    "docs/writing-functions.md": 12,
    "docs/deploying.md": 6,
    "docs/operating.md": 8,
    "docs/http-contract.md": 7,
    "docs/open-runtimes.md": 7,
    "docs/scale.md": 1,
    "docs/container.md": 0,  # written by the container work: docker is not run here
}
# Files that must exist (docs/container.md comes with the container work).
REQUIRED = ("README.md", "docs/writing-functions.md", "docs/deploying.md",
            "docs/operating.md", "docs/http-contract.md", "docs/open-runtimes.md")

SHELL_INFOS = frozenset({"sh", "bash", "shell"})
FILE_TIMEOUT = 300.0        # seconds for all the blocks of one file
BACKGROUND_WAIT = 120.0     # for a background block's URL (`make run` may build first)
STOP_GRACE = 10.0           # SIGTERM to SIGKILL
DOCS_PORT = 3000
TMP_GLOB = "pyrt-docs-*"    # fixed /tmp names the docs use (and remove)
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MARKER = "### docs-block"
OUTPUT_TAIL = 80

FENCE_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*)$")
NOT_RUNNABLE_RE = re.compile(r"^\s*<!--\s*not-runnable:(?P<reason>.*?)-->\s*$")
BACKGROUND_RE = re.compile(r"^\s*<!--\s*background:(?P<url>.*?)-->\s*$")
ANY_MARKER_RE = re.compile(r"^\s*<!--\s*(not-runnable|background)\b")
DROPPED_PREFIXES = ("PIP_", "PYRT_", "PYTHON", "PYTEST_", "VIRTUAL_ENV", "CONDA_", "PYENV")
DROPPED_NAMES = frozenset({"PORT", "ENTRYPOINT_NAME", "INTERNAL_RUNTIME_KEY", "TMPDIR",
                           "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "PS1"})


# --------------------------------------------------------------------------- parsing

@dataclass
class Block:
    file: str                  # relative to the repository
    line: int                  # of the opening fence, 1-based
    info: str                  # first word of the info string, lower-cased
    text: str
    skip_reason: Optional[str] = None
    background_url: Optional[str] = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def is_shell(self) -> bool:
        return self.info in SHELL_INFOS


class DocError(Exception):
    """The Markdown breaks the conventions above (reported as a test failure)."""


def parse_blocks(rel: str, text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the marker on the line before it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    used_markers: set[int] = set()
    inside: set[int] = set()  # lines within fences: a marker there is text, not a marker
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"].expandtabs())
        words = m["info"].split()
        info = words[0].lower() if words else ""
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            line = lines[j]
            strip = len(line) - len(line.lstrip(" "))
            body.append(line[min(strip, indent):])
            j += 1
        if j >= len(lines):
            raise DocError(f"{rel}:{i + 1}: the fence opened here is never closed")
        inside.update(range(i + 1, j))
        block = Block(rel, i + 1, info, "\n".join(body) + "\n")
        prev = lines[i - 1] if i > 0 else ""
        if ANY_MARKER_RE.match(prev):
            used_markers.add(i - 1)
            skip, bg = NOT_RUNNABLE_RE.match(prev), BACKGROUND_RE.match(prev)
            if not block.is_shell:
                raise DocError(f"{rel}:{i}: a marker before a `{info}` block, which is not "
                               "run anyway")
            if skip is not None:
                block.skip_reason = skip["reason"].strip()
                if not block.skip_reason:
                    raise DocError(f"{rel}:{i}: `not-runnable:` needs a reason")
            elif bg is not None:
                block.background_url = bg["url"].strip()
                if not re.fullmatch(r"https?://\S+", block.background_url):
                    raise DocError(f"{rel}:{i}: `background:` needs a URL, got "
                                   f"{block.background_url!r}")
            else:
                raise DocError(f"{rel}:{i}: malformed marker {prev.strip()!r}")
        blocks.append(block)
        i = j + 1
    for n, line in enumerate(lines):
        if ANY_MARKER_RE.match(line) and n not in used_markers and n not in inside:
            raise DocError(f"{rel}:{n + 1}: marker not on the line right before a fence")
    return blocks


def doc_files() -> list[str]:
    found = {"README.md"} | {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    return sorted(found | set(REQUIRED))


# --------------------------------------------------------------------------- the script

# Run before the first block. Names start with __docs_ to stay out of the blocks' way.
PRELUDE = r"""
__docs_state=$1
__docs_bg=0
__docs_background() {  # FILE:LINE URL SCRIPT: start SCRIPT in its own session, wait for URL
    local where=$1 url=$2 script=$3 log pid deadline
    __docs_bg=$((__docs_bg + 1))
    log="$__docs_state/background-$__docs_bg.log"
    echo "$where" > "$log.where"
    setsid bash -euo pipefail -c 'echo $$ > "$1"; shift; exec bash -euo pipefail "$@"' \
        bash "$__docs_state/background-$__docs_bg.pid" "$script" < /dev/null > "$log" 2>&1 &
    pid=$!
    deadline=$(( $(date +%s) + BACKGROUND_WAIT ))
    until curl -sf -o /dev/null --max-time 2 "$url"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "background block $where ended before $url answered 200; its output:" >&2
            tail -n 40 "$log" >&2
            return 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "background block $where: $url did not answer 200 within BACKGROUND_WAIT s" >&2
            tail -n 40 "$log" >&2
            return 1
        fi
        sleep 0.2
    done
}
""".replace("BACKGROUND_WAIT", str(int(BACKGROUND_WAIT)))


def build_script(blocks: list[Block], state: Path) -> str:
    """One bash script: the prelude, then each runnable block after its marker echo."""
    parts = [PRELUDE]
    for n, block in enumerate(blocks):
        # On a line of its own even after output without a final newline (curl's).
        echo = f"printf '\\n%s\\n' {shlex.quote(f'{MARKER} {block.where}')}"
        if block.background_url is not None:
            script = state / f"block-{n}.sh"
            script.write_text(block.text)
            parts.append(f"{echo}\n__docs_background {shlex.quote(block.where)} "
                         f"{shlex.quote(block.background_url)} {shlex.quote(str(script))}\n")
        else:
            parts.append(f"{echo}\n{block.text}")
    return "\n".join(parts)


def docs_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(DROPPED_PREFIXES) and k not in DROPPED_NAMES}
    env.update(HOME=str(home), PATH=DEBIAN_PATH, PYRT_HOST="127.0.0.1")
    return env


# --------------------------------------------------------------------------- processes

def proc_fields(pid: int) -> Optional[tuple[str, int, int, int]]:
    """(state, ppid, pgid, sid) of pid, or None if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2]), int(rest[3])


def session_members(sids: set[int]) -> list[tuple[int, str, int, int]]:
    """(pid, state, ppid, pgid) of every process in one of the sessions."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = proc_fields(int(name))
            if f is not None and f[3] in sids:
                out.append((int(name), f[0], f[1], f[2]))
    return out


def reap_own_zombies(members: list[tuple[int, str, int, int]]) -> None:
    """Processes of the sessions re-parented to pytest (a child subreaper) and dead."""
    me = os.getpid()
    for pid, state, ppid, _ in members:
        if state == "Z" and ppid == me:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def stop_sessions(sids: set[int]) -> list[str]:
    """SIGTERM to every process group of the sessions, SIGKILL after STOP_GRACE.
    Returns what had to be killed."""
    def live() -> list[tuple[int, str, int, int]]:
        members = session_members(sids)
        reap_own_zombies(members)
        return [m for m in members if m[1] not in ("Z", "X")]

    def signal_groups(sig: int) -> None:
        for pgid in {m[3] for m in live()}:
            try:
                os.killpg(pgid, sig)
            except OSError:
                pass

    signal_groups(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while live() and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = [f"{pid} ({proc_cmdline(pid)})" for pid, *_ in live()]
    if killed:
        signal_groups(signal.SIGKILL)
        deadline = time.monotonic() + STOP_GRACE
        while live() and time.monotonic() < deadline:
            time.sleep(0.1)
    return killed


def listening_on(port: int) -> bool:
    """Whether any socket on this machine listens on TCP `port` (IPv4 or IPv6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 4 or fields[3] != "0A":  # 0A: LISTEN
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def wait_port_free(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while listening_on(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def remove_docs_tmp() -> None:
    for p in Path("/tmp").glob(TMP_GLOB):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def tail(text: str, n: int = OUTPUT_TAIL) -> str:
    return "\n".join(text.splitlines()[-n:])


# --------------------------------------------------------------------------- tests

def load_blocks(rel: str) -> list[Block]:
    """The shell blocks of a file ([] when it does not exist)."""
    path = REPO / rel
    if not path.exists():
        return []
    return [b for b in parse_blocks(rel, path.read_text()) if b.is_shell]


def not_runnable_blocks() -> list[Block]:
    """For the skip list; a file that does not parse fails in test_shell_blocks_run."""
    out: list[Block] = []
    for rel in doc_files():
        try:
            out.extend(b for b in load_blocks(rel) if b.skip_reason is not None)
        except DocError:
            pass
    return out


@pytest.fixture(autouse=True)
def _bounded_test() -> Iterator[None]:
    """Replaces conftest's per-test alarm: a file is bounded by FILE_TIMEOUT here."""
    yield


def test_every_doc_has_a_minimum() -> None:
    missing = [f for f in doc_files() if f not in MIN_RUN]
    assert not missing, f"add these to MIN_RUN in {Path(__file__).name}: {missing}"


def block_id(block: Block) -> str:
    return block.where


@pytest.mark.parametrize("block", not_runnable_blocks(), ids=block_id)
def test_not_runnable(block: Block) -> None:
    """One skip per block marked not-runnable, with its reason (see `pytest -rs`)."""
    pytest.skip(f"{block.where}: not run: {block.skip_reason}")


def live_members(sid: int) -> list[str]:
    members = session_members({sid})
    reap_own_zombies(members)
    return [f"{pid} ({proc_cmdline(pid)})" for pid, state, _, _ in members
            if state not in ("Z", "X")]


@pytest.mark.parametrize("rel", doc_files())
def test_shell_blocks_run(rel: str, tmp_path: Path) -> None:
    if rel not in REQUIRED and not (REPO / rel).exists():
        pytest.skip(f"{rel} does not exist yet")
    assert (REPO / rel).exists(), f"{rel} is missing"
    error: Optional[str] = None
    try:
        blocks = load_blocks(rel)
    except DocError as e:
        error = str(e)
    if error is not None:
        pytest.fail(error, pytrace=False)
    runnable = [b for b in blocks if b.skip_reason is None]
    skipped = [f"{b.where}: {b.skip_reason}" for b in blocks if b.skip_reason is not None]
    minimum = MIN_RUN.get(rel, 0)
    assert len(runnable) >= minimum, (
        f"{rel}: {len(runnable)} runnable shell block(s), at least {minimum} expected "
        f"(not runnable: {skipped})")
    if not runnable:
        return
    if listening_on(DOCS_PORT):
        pytest.fail(f"port {DOCS_PORT} is in use before {rel} runs: the docs serve on it; "
                    "stop whatever listens there", pytrace=False)

    state = tmp_path / "state"
    home = tmp_path / "home"
    state.mkdir()
    home.mkdir()
    script = tmp_path / "blocks.sh"
    script.write_text(build_script(runnable, state))
    log_path = tmp_path / "output.log"
    remove_docs_tmp()
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["bash", "-euo", "pipefail", str(script), str(state)],
                                cwd=REPO, env=docs_env(home), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rc: Optional[int] = None
    left_running: list[str] = []
    try:
        rc = proc.wait(timeout=FILE_TIMEOUT)
        # Servers a block started with `&` are the block's to stop (kill + wait).
        left_running = live_members(proc.pid)
    except subprocess.TimeoutExpired:
        pass
    finally:
        sids = {proc.pid}
        for pid_file in state.glob("background-*.pid"):
            try:
                sids.add(int(pid_file.read_text().strip()))
            except ValueError:
                pass
        killed = stop_sessions(sids)
        if proc.poll() is None:
            proc.kill()
            proc.wait(STOP_GRACE)
        remove_docs_tmp()
    seconds = time.monotonic() - started

    output = log_path.read_text(errors="replace")
    ran = [line[len(MARKER) + 1:] for line in output.splitlines() if line.startswith(MARKER)]
    backgrounds = ""
    for bg_log in sorted(state.glob("background-*.log")):
        where = Path(f"{bg_log}.where").read_text().strip()
        backgrounds += (f"\n--- background block {where}, last lines:\n"
                        f"{tail(bg_log.read_text(errors='replace'), 20)}")
    problems = []
    if rc is None:
        problems.append(f"still running after {FILE_TIMEOUT:.0f} s")
    elif rc != 0:
        problems.append(f"exit status {rc}")
    elif ran != [b.where for b in runnable]:
        problems.append(f"not every block ran (did one `exit`?): ran {ran}")
    if left_running:
        problems.append("the blocks left processes running (stop them in the block: "
                        "kill $pid; wait $pid): " + ", ".join(left_running))
    if killed:
        problems.append(f"processes still there {STOP_GRACE:.0f} s after SIGTERM, killed: "
                        + ", ".join(killed))
    if not wait_port_free(DOCS_PORT, STOP_GRACE):
        problems.append(f"something still listens on port {DOCS_PORT} after {rel}")
    if problems:
        failing = ran[-1] if ran else "(before the first block)"
        pytest.fail(f"{rel}: {'; '.join(problems)}; last block started: {failing}\n"
                    f"--- output, last lines:\n{tail(output)}{backgrounds}", pytrace=False)
    print(f"\n{rel}: {len(runnable)} block(s) ran in {seconds:.1f} s; "
          f"{len(skipped)} not run: {skipped}")
