import ctypes
import os


def main(req, res):
    how = req.payload.get('how') if isinstance(req.payload, dict) else None
    if how == 'exit':
        os._exit(3)
    if how == 'segv':
        ctypes.string_at(0)
    return res.json({'pid': os.getpid()})
