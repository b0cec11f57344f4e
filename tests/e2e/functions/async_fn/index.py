import asyncio
import os

state = {'loop': None, 'future': None, 'calls': 0}
lock = asyncio.Lock()
queue = asyncio.Queue()


async def main(req, res):
    loop = asyncio.get_running_loop()
    state['calls'] += 1
    same_loop = state['loop'] is loop
    if state['loop'] is None:
        state['loop'] = loop
    # A future created on the previous call's loop: only completes on the same loop.
    reused = None
    if state['future'] is not None:
        fut = state['future']
        loop.call_soon(fut.set_result, state['calls'])
        reused = await asyncio.wait_for(fut, 2)
    state['future'] = loop.create_future()
    # Module-level asyncio primitives bind to the first loop that uses them (3.10+).
    async with lock:
        await queue.put(state['calls'])
        got = await queue.get()
    await asyncio.sleep(0.01)
    return res.json({'calls': state['calls'], 'same_loop': same_loop,
                     'reused_future': reused, 'queue': got, 'pid': os.getpid()})
