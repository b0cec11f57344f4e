def main(req, res):
    return res.send('hello')
