"""aiohttp app for the contract subset (contract.py): the stack of the seed's successor,
run by gunicorn with aiohttp's worker class.

    gunicorn -k aiohttp.GunicornWebWorker -w 2 -b 127.0.0.1:P --chdir bench/apps \
             aiohttp_app:app

Environment: INTERNAL_RUNTIME_KEY, BENCH_CODE_DIR.
"""

from __future__ import annotations

import os
import sys

from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import contract  # noqa: E402 - after the path is set


def _reply(answer: contract.Answer) -> web.Response:
    status, headers, body = answer
    return web.Response(status=status, headers=dict(headers), body=body)


async def execution(request: web.Request) -> web.Response:
    if not contract.authorized(request.headers.get("x-internal-challenge")):
        return _reply(contract.UNAUTHORIZED)
    if (request.content_length or 0) > contract.MAX_BODY:
        return _reply(contract.TOO_LARGE)
    body = await request.read()
    return _reply(await contract.execute_async(body))


async def not_allowed(request: web.Request) -> web.Response:
    return _reply(contract.error(405, "Method not allowed"))


app = web.Application(client_max_size=contract.MAX_BODY)
app.router.add_route("POST", "/{tail:.*}", execution)
app.router.add_route("*", "/{tail:.*}", not_allowed)
