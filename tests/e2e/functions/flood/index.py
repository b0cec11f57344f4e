"""Output past the bounds: one long unterminated line, or a flood of lines."""
import sys


def main(req, res):
    p = req.payload
    marker = p['marker']
    if p['how'] == 'longline':
        sys.stdout.write(marker + 'L' * p['n'])  # no newline
        sys.stdout.flush()
    elif p['how'] == 'flood':
        line = marker + '-' + 'F' * (p['line'] - len(marker) - 2)
        for _ in range(p['total'] // p['line']):
            print(line)
        sys.stdout.flush()
    elif p['how'] == 'print':
        print(marker, flush=True)
    else:
        raise ValueError(p['how'])
    return res.send('done')
