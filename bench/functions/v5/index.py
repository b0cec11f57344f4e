"""The v5 workload (open-runtimes' contract): a small JSON answer built from the request.

async, as open-runtimes' own test function is. The same file runs on pyrt
(`serve --contract v5`) and on open-runtimes' server; ENV1 comes from the server's
environment, as the executor passes a function's variables. With `wait_ms` in the query
(the I/O-bound workload) it first awaits that long, as a call to another service would.
"""

import asyncio
import os


async def main(context):
    wait_ms = context.req.query.get('wait_ms')
    if wait_ms:
        await asyncio.sleep(int(wait_ms) / 1000)
    return context.res.json({
        'normal': 'Hello World!',
        'env1': os.environ.get('ENV1', ''),
        'payload': context.req.body['payload'],
        'path': context.req.path,
        'name': context.req.query.get('name', ''),
        'test': context.req.headers.get('test', ''),
    })
