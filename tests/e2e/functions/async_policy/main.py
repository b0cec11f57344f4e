"""An async function that installs an event loop policy of its own at import, as code
that uses uvloop does (`uvloop.install()`): pyrt's workers must run it on that policy's
loop (tests/e2e/test_async_slots.py)."""
import asyncio
from typing import Any


class MarkingPolicy(asyncio.DefaultEventLoopPolicy):
    """The default loop, marked as made by this policy."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        setattr(loop, "made_by_marking_policy", True)
        return loop


asyncio.set_event_loop_policy(MarkingPolicy())


async def main(context: Any) -> Any:
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    return context.res.json({"policy": getattr(loop, "made_by_marking_policy", False)})
