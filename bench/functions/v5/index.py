"""The v5 workload (open-runtimes' contract): a small JSON answer built from the request.

async, as open-runtimes' own test function is. The same file runs on pyrt
(`serve --contract v5`) and on open-runtimes' server; ENV1 comes from the server's
environment, as the executor passes a function's variables.
"""

import os


async def main(context):
    return context.res.json({
        'normal': 'Hello World!',
        'env1': os.environ.get('ENV1', ''),
        'payload': context.req.body['payload'],
        'path': context.req.path,
        'name': context.req.query.get('name', ''),
        'test': context.req.headers.get('test', ''),
    })
