"""A synchronous `def main(context)` (v5), dispatching on the `x-action` header."""
import os
import subprocess
import time


def main(context):
    action = context.req.headers.get('x-action', '')
    if action == 'hello':
        return context.res.text('sync hello')
    if action == 'pid':
        return context.res.text(str(os.getpid()))
    if action == 'spin':
        context.log('spin start')
        while True:
            pass
    if action == 'block':
        context.log('block start')
        time.sleep(100)
        return context.res.text('woke up')
    if action == 'child':
        # A child that would outlive the execution if pyrt did not stop it.
        proc = subprocess.Popen(['sleep', '100'])
        context.log('child %d' % proc.pid)
        time.sleep(100)
        return context.res.text('woke up')
    return context.res.text('unknown', 400)
