"""Payload scaling: answers the payload it was given, so cost grows with its size."""


def main(req, res):
    return res.json({'payload': req.payload})
