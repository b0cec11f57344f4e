"""An I/O-bound async function for --async-slots (tests/e2e/test_async_slots.py).

The query (v5) or the payload (seed, v2) says what to do: sleep `s` seconds, print and
log a marker `m` before and after the wait, write it to fd 1 directly (`fd`) or through
a logging handler made at import (`logging`), block the loop with sync code, crash the
worker, keep going when cancelled (`swallow` seconds), or talk to an echo server over
one connection shared by every execution; or time its loop's timers (`timers` sleeps of
`timers_s` seconds).
"""
import asyncio
import logging
import os
import sys
import time
from typing import Any, Optional

_echo: Optional[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = None
_echo_lock = asyncio.Lock()
logging.basicConfig(stream=sys.stderr, format="logging %(message)s")


async def _echo_line(port: int, text: str) -> str:
    """One line through the module's one connection to the echo server."""
    global _echo
    async with _echo_lock:
        if _echo is None:
            _echo = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = _echo
        writer.write(text.encode() + b"\n")
        await writer.drain()
        return (await reader.readline()).decode().strip()


async def _median_sleep(count: int, seconds: float) -> float:
    """How long `asyncio.sleep(seconds)` takes on this loop, the median of `count`."""
    took = []
    for _ in range(count):
        start = time.perf_counter()
        await asyncio.sleep(seconds)
        took.append(time.perf_counter() - start)
    return sorted(took)[count // 2]


async def run(args: dict[str, Any], log: Any) -> dict[str, Any]:
    marker = str(args.get("m", ""))
    if marker:
        print("before", marker)
        log("log-before " + marker)
    if args.get("fd"):
        os.write(1, f"fd-write {marker}".encode())  # no newline: an unfinished line
    if args.get("logging"):
        logging.getLogger("fn").warning("line %s", marker)
    if args.get("block"):
        time.sleep(float(args["block"]))  # sync code on the event loop
    if args.get("crash"):
        await asyncio.sleep(float(args.get("crash_after", 0.1)))
        os._exit(3)
    timer_median = None
    if args.get("timers"):
        timer_median = await _median_sleep(int(args["timers"]), float(args["timers_s"]))
    echoed = None
    if args.get("echo_port"):
        echoed = await _echo_line(int(args["echo_port"]), marker)
    try:
        await asyncio.sleep(float(args.get("s", 0.2)))
    except asyncio.CancelledError:
        print("cancelled", marker, flush=True)
        if not args.get("swallow"):
            raise
        await asyncio.sleep(float(args["swallow"]))  # cleanup that takes its time
        print("went on after the cancel", marker)
    if marker:
        print("after", marker)
        log("log-after " + marker)
    return {"m": marker, "pid": os.getpid(), "echo": echoed, "timer_median": timer_median,
            "loop": type(asyncio.get_running_loop()).__name__}


async def main(context: Any) -> Any:
    """v5: the arguments in the query."""
    return context.res.json(await run(dict(context.req.query), context.log))
