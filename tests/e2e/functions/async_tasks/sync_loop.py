"""A sync main that runs an event loop of its own (asyncio.run): it must work on a
worker that runs tasks too."""
import asyncio
from typing import Any


async def _twice(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


def main(req: Any, res: Any) -> Any:
    return res.json({"twice": asyncio.run(_twice(21))})
