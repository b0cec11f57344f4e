import helper


def main(req, res):
    return res.send(helper.VALUE)
