"""Answers with what the request carried: its payload, env and headers."""

from function_types import Request, Response, Result


def main(req: Request, res: Response) -> Result:
    return res.json({"payload": req.payload, "env": req.env, "headers": req.headers})
