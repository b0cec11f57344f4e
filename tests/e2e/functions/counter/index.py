import os

count = 0


def main(req, res):
    global count
    count += 1
    return res.json({'count': count, 'pid': os.getpid()})
