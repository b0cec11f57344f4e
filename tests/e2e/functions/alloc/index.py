"""Allocates payload['mib'] MiB (at once, or in chunks of payload['chunk_mib'] MiB).

With payload['keep'], the allocation is kept in module state (a function that leaks)."""
import os

kept = []


def main(req, res):
    p = req.payload
    mib = int(p.get('mib', 0))
    chunk = int(p.get('chunk_mib', 0))
    if p.get('keep'):
        kept.append(b'k' * (mib << 20))
        return res.json({'pid': os.getpid(), 'kept_mib': mib * len(kept)})
    if chunk:
        parts = [b'c' * (chunk << 20) for _ in range(mib // chunk)]
        total = sum(len(x) for x in parts)
        del parts
    else:
        data = b'x' * (mib << 20)
        total = len(data)
        del data
    return res.json({'pid': os.getpid(), 'allocated': total})
