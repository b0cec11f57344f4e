"""Blocks forever: payload['how'] picks the way (all must be stopped by the timeout)."""
import ctypes
import signal
import threading
import time


def main(req, res):
    how = req.payload.get('how', 'lock')
    if how == 'lock':
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()  # deadlock: a plain Lock is not re-entrant
    elif how == 'csleep':
        ctypes.CDLL(None).sleep(100)  # blocked in C, never back in the interpreter
    elif how == 'sigign':
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        time.sleep(1000)
    else:
        raise ValueError(how)
    return res.send('unreachable')
