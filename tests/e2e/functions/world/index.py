import os
import sys
import tempfile


def _writable(directory):
    if not directory:
        return 'unset'
    try:
        path = os.path.join(directory, 'pyrt-e2e-probe-%d' % os.getpid())
        with open(path, 'w') as f:
            f.write('x')
        os.unlink(path)
        return 'ok'
    except OSError as e:
        return 'error: %s' % e


def main(req, res):
    try:
        fd, name = tempfile.mkstemp()
        os.close(fd)
        os.unlink(name)
        mkstemp = 'ok'
    except OSError as e:
        mkstemp = 'error: %s' % e
    null = os.stat('/dev/null')
    st0 = os.fstat(0)
    return res.json({
        'cwd': os.getcwd(),
        'uid': os.getuid(),
        'euid': os.geteuid(),
        'stdin_target': os.readlink('/proc/self/fd/0'),
        'stdin_is_devnull': (st0.st_rdev, st0.st_ino) == (null.st_rdev, null.st_ino),
        'stdin_read': os.read(0, 16).decode('latin-1'),
        'sys_stdin_read': sys.stdin.read() if sys.stdin is not None else None,
        'home': os.environ.get('HOME'),
        'home_writable': _writable(os.environ.get('HOME')),
        'tmpdir': os.environ.get('TMPDIR'),
        'tmpdir_writable': _writable(os.environ.get('TMPDIR')),
        'mkstemp': mkstemp,
        'sys_path': sys.path,
    })
