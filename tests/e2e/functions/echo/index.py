"""Echoes what pyrt passed in, with the Python types."""


def main(req, res):
    payload = req.payload
    return res.json({
        'payload': payload,
        'payload_type': type(payload).__name__,
        'payload_len': len(payload) if isinstance(payload, (str, list, dict)) else None,
        'env': req.env,
        'env_none': sorted(k for k, v in req.env.items() if v is None),
        'headers': req.headers,
    })
