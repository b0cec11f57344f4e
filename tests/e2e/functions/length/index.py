def main(req, res):
    payload = req.payload
    return res.json({'payload_len': len(payload) if isinstance(payload, (str, list, dict))
                     else None})
