def handler(req, res):
    return res.send('should not run')
