"""The I/O-bound workload for the async anchors (seed contract): waits as a call to
another service would (asyncio.sleep, for the milliseconds in the request's x-wait-ms
header), then answers what the upstream function answers."""

import asyncio


async def main(req, res):
    await asyncio.sleep(int(req.headers['x-wait-ms']) / 1000)
    return res.json({
        'normal': 'Hello World!',
        'env1': req.env['ENV1'],
        'payload': req.payload,
    })
