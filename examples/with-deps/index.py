"""Formats a number of bytes with a dependency from requirements.txt (humanize)."""

import humanize

from function_types import Request, Response, Result


def main(req: Request, res: Response) -> Result:
    payload = req.payload if isinstance(req.payload, dict) else {}
    size = payload.get("bytes", 0)
    if not isinstance(size, (int, float)) or isinstance(size, bool):
        return res.json({"message": "payload.bytes must be a number"}, status=400)
    return res.json({"size": humanize.naturalsize(size)})
