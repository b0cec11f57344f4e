"""One response shape per payload['case']."""


def main(req, res):
    case = req.payload.get('case')
    if case == 'send':
        return res.send('plain text')
    if case == 'send_unicode':
        return res.send('h\u00e9llo \u2713')
    if case == 'json':
        return res.json({'a': 1, 'b': [True, None, 'x']})
    if case == 'send_status_headers':
        return res.send('created', 201, {'X-Custom': 'custom-value'})
    if case == 'json_status_headers':
        return res.json({'teapot': True}, status=418, headers={'X-Other': 'v2'})
    if case == 'content_type_override':
        return res.send('<b>hi</b>', headers={'Content-Type': 'text/html'})
    if case == 'json_content_type_override':
        return res.json({'x': 1}, headers={'content-type': 'application/vnd.test+json'})
    if case == 'forbidden_header':
        return res.send('x', headers={req.payload['name']: req.payload['value']})
    if case == 'return_dict':
        return {'returned': 'dict', 'n': 2}
    if case == 'return_list':
        return [1, 'two', None]
    if case == 'return_str':
        return 'returned string'
    if case == 'return_bytes':
        return b'\x00\x01binary\xff'
    if case == 'none_after_send':
        res.send('first')
        res.send('last', 202)
        return None
    if case == 'none_after_json':
        res.json({'via': 'json'})
        return None
    if case == 'none':
        return None
    if case == 'unserialisable_json':
        return res.json({'a': object()})
    if case == 'unserialisable_return':
        return {1, 2, 3}
    if case == 'big':
        return res.send('b' * req.payload['n'])
    if case == 'status_only':
        return res.send('', 204)
    raise ValueError('unknown case %r' % (case,))
