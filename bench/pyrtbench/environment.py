"""What the report records about the run's surroundings: the machine, package versions,
the git commit, what the v5 rows ran; and building the C ceiling."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Optional

from pyrtbench.config import (CEILING_SRC, OPENRUNTIMES_FILES, OPENRUNTIMES_HOWTO, REPO,
                              V5_BODY, V5_LOG_ID, V5_PATH, V5_SERVERS, v5_headers)
from pyrtbench.servers import Spec
from pyrtbench.settings import Settings


def dpkg_version(pkg: str) -> Optional[str]:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                          text=True)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": model, "kernel": platform.release(), "machine": platform.machine(),
            "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
            "mem_total_mib": _mem_total_mib()}


def _mem_total_mib() -> Optional[int]:
    try:
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        return int(m.group(1)) // 1024 if m else None
    except OSError:
        return None


def versions(specs: dict[str, Spec], names: list[str], pyrt_bin: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pkgs = {"wrk", "python3.11", "libpython3.11"}
    for n in names:
        pkgs.update(specs[n].packages)
    for pkg in sorted(pkgs):
        v = dpkg_version(pkg)
        if v:
            out[pkg] = v
    try:
        out["pyrt"] = subprocess.run([str(pyrt_bin), "--version"], capture_output=True,
                                     text=True, timeout=10).stdout.strip().removeprefix("pyrt ")
    except (OSError, subprocess.SubprocessError):
        out["pyrt"] = None
    try:
        cc = subprocess.run(["cc", "--version"], capture_output=True, text=True, timeout=10)
        out["cc (ceiling)"] = cc.stdout.splitlines()[0] if cc.stdout else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def v5_info(s: Settings, src: Optional[Path]) -> dict[str, Any]:
    """What the v5 rows ran: the function, the request, the logging, open-runtimes' source
    (a digest of its files, since the folder carries no commit) or why it was skipped."""
    headers = v5_headers(s.v5_logging)
    info: dict[str, Any] = {
        "function": "bench/functions/v5/index.py: async def main(context), answers "
                    "context.res.json({...}) built from the body, path, query, a header "
                    "and ENV1",
        "request": f"POST {V5_PATH}, body {V5_BODY.decode()}, headers "
                   + "; ".join(f"{k}: {v}" for k, v in headers),
        "logging": (f"enabled, fixed log id {V5_LOG_ID!r}: each execution appends to "
                    f"{V5_LOG_ID}_logs.log and {V5_LOG_ID}_errors.log in the instance's "
                    "logs folder (nobody deletes them)" if s.v5_logging else
                    "disabled (x-open-runtimes-logging: disabled): no log files"),
        "openruntimes_src": None, "skipped": None,
    }
    if src is not None:
        digest = hashlib.sha256()
        for name in OPENRUNTIMES_FILES:
            digest.update((src / name).read_bytes())
        info["openruntimes_src"] = {"path": str(src), "sha256": digest.hexdigest()[:16],
                                    "files": list(OPENRUNTIMES_FILES)}
    elif any(n in V5_SERVERS for n in s.servers):
        info["skipped"] = f"openruntimes-v5 skipped: {OPENRUNTIMES_HOWTO}"
    return info


def build_ceiling(target: Path) -> None:
    if target.exists() and target.stat().st_mtime >= CEILING_SRC.stat().st_mtime:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", str(CEILING_SRC), "-o",
                    str(target)], check=True)
