"""The same function for the seed and v2 contracts: main(req, res), args in the payload."""
import json
from typing import Any

from main import run


async def main(req: Any, res: Any) -> Any:
    payload = req.payload
    args = json.loads(payload) if isinstance(payload, str) and payload else payload or {}
    return res.json(await run(args, print))
