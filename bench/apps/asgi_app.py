"""ASGI app for the contract subset (contract.py), for uvicorn with uvloop and httptools.

    uvicorn --workers 2 --loop uvloop --http httptools --no-access-log \
            --app-dir bench/apps asgi_app:app

Environment: INTERNAL_RUNTIME_KEY, BENCH_CODE_DIR.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Awaitable, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import contract  # noqa: E402 - after the path is set

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _reply(send: Send, answer: contract.Answer) -> None:
    status, headers, body = answer
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                msg: Any = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    if scope["method"] != "POST":
        await _reply(send, contract.error(405, "Method not allowed"))
        return
    key = None
    length = 0
    for name, value in scope["headers"]:
        if name == b"x-internal-challenge":
            key = value.decode("latin-1")
        elif name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = 0
    if not contract.authorized(key):
        await _reply(send, contract.UNAUTHORIZED)
        return
    if length > contract.MAX_BODY:
        await _reply(send, contract.TOO_LARGE)
        return
    chunks = []
    more = True
    while more:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        more = msg.get("more_body", False)
    await _reply(send, await contract.execute_async(b"".join(chunks)))
