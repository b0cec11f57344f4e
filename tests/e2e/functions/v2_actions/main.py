"""The v2 test function: `main(req, res)`, dispatching on the payload string."""
import os
import sys
import time


def main(req, res):
    action = req.payload
    if action.startswith('echo'):
        res.json({
            'variables': req.variables,
            'env_is_variables': req.env == req.variables,
            'payload': req.payload,
            'headers': req.headers,
        })
        return None
    if action == 'send':
        res.send('sent as text', 201)
        return None
    if action == 'send-default':
        return res.send('default status')
    if action == 'json':
        return res.json({'list': [1, 'two'], 'slash': 'a/b', 'uni': 'é👋'}, 202)
    if action == 'print':
        print('hello stdout')
        print('second line')
        res.send('printed')
        return None
    if action == 'print-many':
        for i in range(2000):
            print('line %d' % i)
        return res.send('printed many')
    if action == 'raise':
        print('before the failure')
        print('to stderr', file=sys.stderr)
        raise ValueError('v2 failure 4242')
    if action == 'sleep':
        time.sleep(100)
        return res.send('woke up')
    if action == 'spin':
        while True:
            pass
    if action == 'secrets':
        key = req.headers.get('rkey', '')[::-1]
        return res.json({
            'has_key_var': 'INTERNAL_RUNTIME_KEY' in os.environ,
            'in_values': bool(key) and any(key in v for v in os.environ.values()),
        })
    return res.send('unknown action', 400)
