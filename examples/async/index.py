"""An async function: awaits a sleep, counts its calls in module-level state."""

import asyncio

from function_types import Request, Response, Result

calls = 0


async def main(req: Request, res: Response) -> Result:
    global calls
    calls += 1
    payload = req.payload if isinstance(req.payload, dict) else {}
    delay = payload.get("sleep", 0)
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not 0 <= delay <= 5:
        return res.json({"message": "payload.sleep must be a number from 0 to 5"}, status=400)
    await asyncio.sleep(delay)
    return res.json({"slept": delay, "calls_in_this_worker": calls})
