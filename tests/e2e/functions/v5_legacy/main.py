"""A `main(req, res)` function served in v5 mode."""
import os


def main(req, res):
    if req.headers.get('x-action') == 'send':
        return res.send('legacy send')
    return res.json({
        'payload': req.payload,
        'body': req.body,
        'custom': req.env.get('CUSTOM_ENV_VAR'),
        'env_has_secret': 'OPEN_RUNTIMES_SECRET' in req.env,
        'os_has_secret': 'OPEN_RUNTIMES_SECRET' in os.environ,
        'method': req.method,
    })
