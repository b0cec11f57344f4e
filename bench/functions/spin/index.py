"""Runaway code: never returns; only a runtime that kills it can answer."""


def main(req, res):
    while True:
        pass
