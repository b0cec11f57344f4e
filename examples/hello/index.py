"""The seed's example: answers {"Hello": "World!"}."""

from function_types import Request, Response, Result


def main(req: Request, res: Response) -> Result:
    return res.json({"Hello": "World!"})
