"""Writes a marker through one output path per payload['how']."""
import ctypes
import os
import subprocess
import sys


def main(req, res):
    how = req.payload['how']
    marker = req.payload['marker']
    if how == 'print':
        print(marker)
    elif how == 'stderr':
        sys.stderr.write(marker + '\n')
    elif how == 'os_write':
        os.write(1, (marker + '\n').encode())
    elif how == 'os_write_stderr':
        os.write(2, (marker + '\n').encode())
    elif how == 'child':
        subprocess.run(['echo', marker], check=True)
    elif how == 'child_stderr':
        subprocess.run(['sh', '-c', 'echo "$0" >&2', marker], check=True)
    elif how == 'libc':
        libc = ctypes.CDLL(None)
        libc.printf(b'%s\n', marker.encode())
        libc.fflush(None)
    elif how == 'print_noflush':
        print(marker, end='')
    elif how == 'long':
        print(marker + 'L' * req.payload['n'])
    elif how == 'many':
        for i in range(req.payload.get('n', 3)):
            print('%s-%d' % (marker, i))
    else:
        raise ValueError(how)
    return res.send('done')
