"""The v5 test function: `async def main(context)`, dispatching on the `x-action` header.

Served with OPEN_RUNTIMES_ENTRYPOINT=handler.py (there is no main.py or index.py here).
"""
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time

MULTIPART = ("--pyrt\r\ncontent-disposition: form-data; name=\"one\"\r\n\r\nfirst\r\n"
             "--pyrt\r\ncontent-disposition: form-data; name=\"two\"\r\n\r\nsecond\r\n"
             "--pyrt--\r\n")


def _scan(path, needle):
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        return 'denied: %s' % e.strerror
    return 'LEAK' if needle in data else 'clean'


def _secrets(context):
    secret = context.req.headers.get('x-rkey', '')[::-1]
    needle = secret.encode()
    return {
        'names': sorted(k for k in os.environ
                        if k in ('OPEN_RUNTIMES_SECRET', 'INTERNAL_RUNTIME_KEY')),
        'in_values': any(secret in v for v in os.environ.values()),
        'self_environ': _scan('/proc/self/environ', needle),
        'self_cmdline': _scan('/proc/self/cmdline', needle),
        'master_environ': _scan('/proc/%s/environ' % context.req.headers.get('x-master', '0'),
                                needle),
        'custom': os.environ.get('CUSTOM_ENV_VAR'),
    }


async def main(context):
    req = context.req
    res = context.res
    action = req.headers.get('x-action', '')

    if action == 'text':
        return res.text('Grüße aus pyrt 👋')
    if action == 'json':
        return res.json({'ok': True, 'items': [1, 2], 'nested': {'a': 'b c'}})
    if action == 'charset':
        return res.text('ÅÆ', 200, {'content-type': 'text/plain; charset=iso-8859-1'})
    if action == 'upper-type':
        return res.text('<b>x</b>', 200, {'Content-Type': 'TEXT/HTML'})
    if action == 'multipart':
        return res.text(MULTIPART, 200, {'content-type': 'multipart/form-data; boundary=pyrt'})
    if action == 'redirect':
        return res.redirect('https://example.org/next')
    if action == 'redirect-302':
        return res.redirect('/elsewhere', 302, {'x-why': 'moved'})
    if action == 'empty':
        return res.empty()
    if action == 'no-return':
        res.text('this answer is never returned')
        return None
    if action == 'twice':
        res.text('first, discarded')
        return res.text('second, returned')
    if action == 'status':
        return res.text('nothing here', 404)
    if action == 'method':
        return res.text(req.method, 200, {'x-method': req.method})
    if action == 'url':
        return res.json({'url': req.url, 'port': req.port, 'path': req.path,
                         'query': req.query, 'query_string': req.query_string,
                         'scheme': req.scheme, 'host': req.host})
    if action == 'headers':
        return res.json(req.headers)
    if action == 'response-headers':
        return res.text('OK', 200, {
            'X-Mixed-Case': 'v1',
            'x-echo-cookie': req.headers.get('cookie', 'missing'),
            'x-saw-opr': req.headers.get('x-open-runtimes-probe', 'missing'),
            'x-open-runtimes-leak': 'must be dropped',
        })
    if action == 'cookies':
        return res.text('OK', 200, {'set-cookie': ['a=1; path=/', 'b=2; path=/; HttpOnly'],
                                    'x-single': 'one'})
    if action == 'body-text':
        return res.text(req.body_text)
    if action == 'body-raw':
        return res.text(req.body_raw)
    if action == 'body-json':
        return res.json(req.body_json)
    if action == 'body-binary':
        return res.binary(req.body_binary)
    if action == 'body-auto-text':
        return res.text(req.body)
    if action == 'body-auto-json':
        return res.json(req.body)
    if action == 'body-type':
        return res.json({'type': type(req.body).__name__,
                         'binary': type(req.body_binary).__name__})
    if action == 'binary-bytearray':
        return res.binary(bytearray([0, 7, 255]))
    if action == 'binary-bytes':
        return res.binary(bytes([1, 128, 255, 0]))
    if action == 'md5':
        data = req.body_binary
        return res.text(hashlib.md5(data).hexdigest(), 200,
                        {'x-method': req.method, 'x-length': str(len(data))})
    if action == 'send-raw':
        return res.send(req.body_raw)
    if action == 'send-str':
        return res.send('50')
    if action == 'send-bytes':
        return res.send(bytes(range(256)), 200, {'content-type': 'image/png'})
    if action == 'env':
        return res.json({'custom': os.environ.get('CUSTOM_ENV_VAR'),
                         'missing': os.environ.get('PYRT_E2E_NOT_DEFINED'),
                         'entrypoint': os.environ.get('OPEN_RUNTIMES_ENTRYPOINT')})
    if action == 'secrets':
        return res.json(_secrets(context))
    if action == 'logs':
        print('native print line')
        context.log('plain log')
        context.error('plain error')
        context.log('a+b+c')
        context.log(42)
        context.log(4.2)
        context.log(True)
        context.log({'k': 'v', 'n': [1, 2]})
        context.log(['x', 1])
        context.log(('t', 2))
        context.log('A' * 9000)
        context.error('B' * 9000)
        return res.text('')
    if action == 'spread':
        context.log('first:', 'second')
        context.error('first:', 'second')
        return res.text('OK')
    if action == 'native':
        print('p1 to stdout')
        print('p2 to stderr', file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, b'fd1 line\n')
        os.write(2, b'fd2 line\n')
        subprocess.run(['echo', 'child line'], check=True)
        context.log('context line')
        return res.text('native')
    if action == 'print-loop':
        token = req.headers.get('x-token', '?')
        for _ in range(5):
            print(token)
            await asyncio.sleep(0.05)
        return res.text(token)
    if action == 'sleep':
        context.log('sleep start')
        await asyncio.sleep(float(req.headers.get('x-seconds', '3')))
        context.log('sleep end')
        return res.text('slept')
    if action == 'spin':
        context.log('spin start')
        while True:
            pass
    if action == 'block':
        context.log('block start')
        time.sleep(100)
        return res.text('woke up')
    if action == 'raise':
        context.log('about to fail')
        raise RuntimeError('pyrt test failure 4711')
    if action == 'ctype':
        if 'x-ctype' not in req.headers:
            return res.text('typed', 200, {'x-other': 'no content type given'})
        return res.text('typed', 200, {'content-type': req.headers['x-ctype']})
    if action == 'json-status':
        return res.json({'created': True}, 201, {'x-extra': 'yes'})
    if action == 'binary-typed':
        return res.binary(b'\x89PNG', 200, {'content-type': 'image/png'})
    if action == 'many-logs':
        count = int(req.headers.get('x-count', '2000'))
        for i in range(count):
            print('native %d' % i)
            context.log('context %d' % i)
        return res.text(str(count))
    if action == 'unicode-log':
        context.log('Grüße', '👋')
        context.error({'é': 'ü'})
        return res.text('OK')
    if action == 'exit':
        context.log('exiting')
        os._exit(3)
    if action == 'json-dump':
        return res.text(json.dumps(req.body_json, sort_keys=True))
    raise ValueError('unknown action: ' + repr(action))
