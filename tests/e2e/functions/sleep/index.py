import os
import time


def main(req, res):
    payload = req.payload if isinstance(req.payload, dict) else {}
    start = time.time()
    time.sleep(float(payload.get('sleep', 1)))
    return res.json({'tag': payload.get('tag'), 'pid': os.getpid(),
                     'start': start, 'end': time.time()})
