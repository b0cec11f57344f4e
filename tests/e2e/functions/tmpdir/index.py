"""A worker's private TMPDIR, as user code sees it (issue 17).

payload: {'write': N files to write into tempfile.gettempdir() (and a folder closed to
          its owner, mode 0, and one read-only, 0500, each holding a file),
          'tree': [folders, files each] of a bigger tree to write there,
          'peek': folders of other workers: what listing each, reading its file-0 and
                  listing its parent gives ('ok' or the errno's name),
          'sleep': seconds to sleep after writing,
          'then': 'crash' (exit at once) or 'hang' (sleep past the deadline)}
Answers what it saw before it wrote: its folder, mode, owner and entries, the variables.
"""
import errno
import os
import stat
import tempfile
import time


def _outcome(fn):
    try:
        fn()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def _write(folder, n, tree):
    for i in range(n):
        with open(os.path.join(folder, f'file-{i}'), 'w') as f:
            f.write(f'written by worker {os.getpid()}\n')
    if n:
        for name, mode in (('closed', 0), ('read-only', 0o500)):
            path = os.path.join(folder, f'{name}-{time.monotonic_ns()}')
            os.mkdir(path)
            with open(os.path.join(path, 'inside'), 'w') as f:
                f.write('x')
            os.chmod(path, mode)
    folders, files = tree
    for d in range(folders):
        sub = os.path.join(folder, f'tree-{time.monotonic_ns()}', f'd{d}')
        os.makedirs(sub)
        for i in range(files):
            with open(os.path.join(sub, f'f{i}'), 'w'):
                pass


def main(req, res):
    p = req.payload if isinstance(req.payload, dict) else {}
    folder = tempfile.gettempdir()
    st = os.stat(folder)
    seen = {
        'pid': int(os.readlink('/proc/self')),  # the server's pid for it, in a PID namespace too
        'uid': os.getuid(),
        'gettempdir': folder,
        'env': {k: os.environ.get(k) for k in ('TMPDIR', 'TEMP', 'TMP')},
        'home': os.environ.get('HOME'),
        'mode': stat.S_IMODE(st.st_mode),
        'owner': st.st_uid,
        'entries': sorted(os.listdir(folder)),
        'mkstemp_in_it': os.path.dirname(tempfile.mkstemp()[1]) == folder,
    }
    for target in p.get('peek', []):
        seen.setdefault('peeks', {})[target] = {
            'list': _outcome(lambda: os.listdir(target)),
            'read': _outcome(lambda: open(os.path.join(target, 'file-0')).read()),
            'parent_list': _outcome(lambda: os.listdir(os.path.dirname(target))),
        }
    _write(folder, int(p.get('write', 0)), p.get('tree', [0, 0]))
    time.sleep(float(p.get('sleep', 0)))
    if p.get('then') == 'crash':
        os._exit(3)
    if p.get('then') == 'hang':
        time.sleep(60)
    return res.json(seen)
