"""Processes an execution leaves behind (issue 17, findings 4 and 5).

payload['what']:
  'hopper'  a child that forks and exits every few ms (a new pid each time), then hangs
  'bomb'    a fork bomb (every process forks for ever), then hangs
  'daemon'  a setsid double-fork printing payload['marker'] every 20 ms for ever; returns
  'zombies' payload['n'] double-forks whose processes exit at once; returns
"""
import os
import sys
import time


def _hop():
    while True:
        try:
            if os.fork() != 0:
                os._exit(0)  # the parent goes: the child carries on under a new pid
        except OSError:
            pass
        time.sleep(0.003)


def _bomb():
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.001)


def _daemon(marker):
    if os.fork() != 0:
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    while True:
        try:
            os.write(1, (marker + '\n').encode())
        except OSError:
            pass
        time.sleep(0.02)


def main(req, res):
    what = req.payload['what']
    if what in ('hopper', 'bomb'):
        if os.fork() == 0:
            try:
                _hop() if what == 'hopper' else _bomb()
            finally:
                os._exit(0)
        time.sleep(3600)
    if what == 'daemon':
        pid = os.getpid()
        _daemon(req.payload['marker'])
        if os.getpid() != pid:
            os._exit(0)  # the daemon's loop never returns; this is the first child
        os.waitpid(-1, 0)
        sys.stdout.flush()
        return res.json({'pid': pid})
    if what == 'zombies':
        for _ in range(int(req.payload['n'])):
            if os.fork() == 0:
                if os.fork() == 0:
                    os._exit(0)
                os._exit(0)
            os.wait()
        time.sleep(0.2)  # the grandchildren are dead by now: zombies of the worker's
        # The pid /proc names it by (os.getpid() is 1 in a PID namespace of its own).
        return res.json({'pid': int(os.readlink('/proc/self'))})
    return res.json({'error': 'unknown'}, 400)
