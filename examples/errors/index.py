"""What failures look like, by payload: "raise" raises (a 500 with the traceback),
"missing" answers a 404 of its own, anything else succeeds."""

from function_types import Request, Response, Result


class ItemNotFound(LookupError):
    pass


def find_item(name: str) -> str:
    raise ItemNotFound(f"no item named {name!r}")


def main(req: Request, res: Response) -> Result:
    if req.payload == "raise":
        return res.send(find_item("raise"))  # the exception escapes: pyrt answers 500
    if req.payload == "missing":
        return res.json({"message": "no such item", "code": 404}, status=404)
    return res.json({"ok": True})
