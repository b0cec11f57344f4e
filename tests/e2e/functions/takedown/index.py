"""The attack of issue 17, finding 3: stop the zygote, kill the siblings, then itself.

payload: {'stop': pids to SIGSTOP, 'kill': pids to SIGKILL}; what the kernel refuses is
skipped (answered if it gets that far, which it does not: it kills itself last).
"""
import os
import signal


def main(req, res):
    refused = []
    for sig, key in ((signal.SIGSTOP, 'stop'), (signal.SIGKILL, 'kill')):
        for pid in req.payload.get(key, []):
            try:
                os.kill(int(pid), sig)
            except OSError as e:
                refused.append([pid, e.strerror])
    os.kill(os.getpid(), signal.SIGKILL)
    return res.json({'refused': refused})
