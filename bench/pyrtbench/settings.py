"""One run's settings, and the sizes they are written in."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass


@dataclass
class Settings:
    servers: list[str]
    runs: int
    duration: int
    concurrency: list[int]
    io_concurrency: list[int]         # the I/O-bound function's (empty: not measured)
    fairness_conns: int
    fairness_duration: int
    payload_sizes: list[int]
    payload_conns: int
    payload_duration: int
    cold_runs: int
    workers: int
    extra_workers: int
    runaway_runs: int
    runaway_timeout: float
    warmup: int
    smoke: bool
    v5_logging: bool


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper().removesuffix("IB").removesuffix("B"))
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}[m.group(2)]


def size_label(n: int) -> str:
    for unit, div in (("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"
