"""Processes, read from /proc: a server's tree, its CPU time and memory; starting a
server in a session of its own and stopping it; the orphans a subreaper collects.
Shared by the benchmark and the soak (tests/soak/soak.py)."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

from pyrtbench.config import HOST

CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans of the servers are re-parented here, so none can escape the final check."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def proc_stat(pid: int) -> Optional[list[str]]:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root: int) -> list[int]:
    """root and every live process below it (by parent pid)."""
    kids: dict[int, list[int]] = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None and st[0] not in ("Z", "X"):
            kids.setdefault(int(st[1]), []).append(pid)
    out: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        if proc_stat(pid) is None:
            continue
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def identity(pid: int) -> Optional[tuple[int, str]]:
    """(pid, start time): tells a process from a later one that reuses its pid."""
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return None
    return pid, st[19]


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime (and those of reaped children) summed over pids."""
    ticks = 0
    for pid in pids:
        st = proc_stat(pid)
        if st is not None:
            ticks += int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])
    return ticks / CLK_TCK


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        if m:
            total += int(m.group(1))
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# The servers this script started and has not stopped yet: never taken for orphans.
OWN_CHILDREN: set[int] = set()


def reap_orphans(name: str) -> list[str]:
    """Processes re-parented to this script (it is a subreaper): killed and reaped."""
    problems = []
    me = os.getpid()
    for pid in all_pids():
        st = proc_stat(pid)
        if st is None or int(st[1]) != me or pid in OWN_CHILDREN:
            continue
        if st[0] not in ("Z", "X"):
            problems.append(f"{name}: orphan {pid} re-parented to the benchmark; killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return problems


def rss_kib(pid: int) -> int:
    """VmRSS of one process (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def spawn(argv: list[str], env: dict[str, str], log_path: Path,
          cwd: Optional[str] = None) -> tuple["subprocess.Popen[bytes]", float]:
    """argv started in a session of its own (so that its process group can be killed as
    one), stdin /dev/null, stdout and stderr to log_path, and remembered in OWN_CHILDREN
    until terminate(). Returns the process and the monotonic time just before the exec."""
    with open(log_path, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                env=env, cwd=cwd, start_new_session=True)
    OWN_CHILDREN.add(proc.pid)
    return proc, started


def terminate(proc: "subprocess.Popen[bytes]", grace: float) -> bool:
    """SIGTERM to the main process only, up to grace seconds for it to exit, then SIGKILL
    to its whole process group (whatever it left). True when SIGTERM was enough (or it
    had already exited). The main process only: each server stops its own workers (a
    SIGTERM to the whole group at once can wedge gunicorn's arbiter)."""
    clean = True
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            clean = False
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(5)
    OWN_CHILDREN.discard(proc.pid)
    return clean
