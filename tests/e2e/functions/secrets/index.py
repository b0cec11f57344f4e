"""Looks for the runtime key wherever user code could read it.

payload: {'rkey': key reversed (so the request body itself never holds the key),
          'master': the server's pid, 'others': pids of the server's other processes}
"""
import os

MAX_REGION = 256 * 1024 * 1024


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as e:
        return e


def _scan_file(path, key):
    data = _read(path)
    if isinstance(data, OSError):
        return 'denied: %s' % data.strerror
    return 'LEAK' if key in data else 'clean'


def _scan_mem(pid, key):
    maps = _read('/proc/%d/maps' % pid)
    if isinstance(maps, OSError):
        return 'denied: maps %s' % maps.strerror
    try:
        fd = os.open('/proc/%d/mem' % pid, os.O_RDONLY)
    except OSError as e:
        return 'denied: %s' % e.strerror
    read_bytes = 0
    try:
        for line in maps.decode('latin-1').splitlines():
            parts = line.split()
            if len(parts) < 2 or parts[1][0] != 'r':
                continue
            if len(parts) > 5 and parts[5] in ('[vvar]', '[vsyscall]', '[vvar_vclock]'):
                continue
            start, end = (int(x, 16) for x in parts[0].split('-'))
            if end - start > MAX_REGION:
                continue
            try:
                data = os.pread(fd, end - start, start)
            except OSError:
                continue
            read_bytes += len(data)
            if key in data:
                return 'LEAK (read %d bytes)' % read_bytes
    finally:
        os.close(fd)
    return 'clean (read %d bytes)' % read_bytes if read_bytes else 'denied: no region readable'


def _ppid(pid):
    with open('/proc/%d/stat' % pid) as f:
        data = f.read()
    return int(data[data.rfind(')') + 2:].split()[1])


def main(req, res):
    key_str = req.payload['rkey'][::-1]
    key = key_str.encode()
    master = int(req.payload['master'])
    out = {
        'os_environ_values': any(key_str in v for v in os.environ.values()),
        'os_environ_names': any(key_str in k for k in os.environ),
        'environ_var_set': 'INTERNAL_RUNTIME_KEY' in os.environ,
        'self_environ': _scan_file('/proc/self/environ', key),
        'self_cmdline': _scan_file('/proc/self/cmdline', key),
        'ancestors': {},
    }
    # Ancestors as this process sees them (none if it is init of its own pid namespace),
    # plus the master by its pid as the test sees it, in case /proc shows that namespace.
    targets = []
    pid = os.getppid()
    while pid > 1 and len(targets) < 10:
        targets.append(pid)
        if pid == master:
            break
        pid = _ppid(pid)
    master_cmdline = _read('/proc/%d/cmdline' % master)
    master_visible = (not isinstance(master_cmdline, OSError)
                      and b'serve' in master_cmdline and b'pyrt' in master_cmdline)
    if master_visible and master not in targets:
        targets.append(master)
    # Other processes of the server (zygote, other workers), by the test's pids.
    me = {os.getpid(), int(os.readlink('/proc/self'))}
    for pid in req.payload.get('others', []):
        cmdline = _read('/proc/%d/cmdline' % pid)
        if pid in me or pid in targets or isinstance(cmdline, OSError) or b'pyrt' not in cmdline:
            continue
        targets.append(pid)
    for pid in targets:
        out['ancestors'][str(pid)] = {
            'environ': _scan_file('/proc/%d/environ' % pid, key),
            'cmdline': _scan_file('/proc/%d/cmdline' % pid, key),
            'mem': _scan_mem(pid, key),
        }
    out['master_visible'] = master_visible
    out['scanned'] = targets
    out['self_pid'] = os.getpid()
    return res.json(out)
