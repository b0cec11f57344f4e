import os
import sys
import uuid

# Identifies this import of the module: a new worker imports it again.
TOKEN = uuid.uuid4().hex


class CustomBase(BaseException):
    pass


def main(req, res):
    kind = req.payload.get('kind') if isinstance(req.payload, dict) else None
    if kind == 'value':
        raise ValueError('boom-value-error')
    if kind == 'systemexit':
        raise SystemExit(3)
    if kind == 'exit0':
        sys.exit(0)
    if kind == 'keyboardinterrupt':
        raise KeyboardInterrupt('boom-kbd')
    if kind == 'base':
        raise CustomBase('boom-custom-base')
    if kind == 'nested':
        def inner():
            raise RuntimeError('boom-inner')
        inner()
    return res.json({'pid': os.getpid(), 'token': TOKEN})
