def main(req, res):
    return res.send('r' * int(req.payload['n']))
