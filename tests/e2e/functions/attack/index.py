"""What hostile user code tries against the server's other processes (issue 17).

payload: {'pids': pids to try (the master, the zygote, sibling workers),
          'stop': True to really SIGSTOP them and lower their RLIMIT_NOFILE to (8, 8)
                  (else signal 0 and their own limits: the same permission checks),
          'stop_group': True to SIGSTOP its own process group too (kill(0, SIGSTOP):
                        the zygote's group, unless the worker has a session of its own)}
Answers what the kernel said to each attempt: 'ok' or the errno's name. 'pid' is what
os.getpid() says (1 in a PID namespace of its own), 'host_pid' the pid /proc names it by.
"""
import ctypes
import errno
import os
import resource
import signal
import socket

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
PTRACE_ATTACH = 16
PTRACE_DETACH = 17
SYS_PROCESS_VM_READV = 310
SYS_PIDFD_SEND_SIGNAL = 424
SYS_PIDFD_OPEN = 434
SYS_PIDFD_GETFD = 438


class IOVec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]


def _errname(e):
    return errno.errorcode.get(e, str(e))


def _try(fn):
    try:
        fn()
        return 'ok'
    except OSError as e:
        return _errname(e.errno)


def _ptrace(pid):
    if LIBC.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
        return _errname(ctypes.get_errno())
    LIBC.ptrace(PTRACE_DETACH, pid, None, None)
    return 'ok'


def _vm_readv(pid):
    buf = ctypes.create_string_buffer(16)
    local = IOVec(ctypes.cast(buf, ctypes.c_void_p), 16)
    remote = IOVec(0x400000, 16)
    n = LIBC.syscall(SYS_PROCESS_VM_READV, pid, ctypes.byref(local), 1,
                     ctypes.byref(remote), 1, 0)
    return 'ok' if n >= 0 else _errname(ctypes.get_errno())


def _pidfd_getfd(pid):
    pidfd = LIBC.syscall(SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        return 'pidfd_open ' + _errname(ctypes.get_errno())
    try:
        fd = LIBC.syscall(SYS_PIDFD_GETFD, pidfd, 0, 0)
        if fd < 0:
            return _errname(ctypes.get_errno())
        os.close(fd)
        return 'ok'
    finally:
        os.close(pidfd)


def _proc_dir(pid):
    try:
        fd = os.open('/proc/%d' % pid, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        return _errname(e.errno)
    os.close(fd)
    return 'ok'


def _proc_pidfd_signal(pid, sig):
    """pidfd_send_signal with a /proc/PID directory fd as the pidfd: no pid to name."""
    try:
        fd = os.open('/proc/%d' % pid, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        return 'open ' + _errname(e.errno)
    try:
        if LIBC.syscall(SYS_PIDFD_SEND_SIGNAL, fd, sig, None, 0) != 0:
            return _errname(ctypes.get_errno())
        return 'ok'
    finally:
        os.close(fd)


def _read_proc(pid, name):
    def read():
        with open('/proc/%d/%s' % (pid, name), 'rb') as f:
            f.read(1)
    return _try(read)


def _prlimit(pid, lower):
    def set_limit():
        # Setting the limit it already has takes the same permission as lowering it to
        # (8, 8), which a hard limit could not come back from.
        old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (8, 8) if lower else old)
    return _try(set_limit)


def _status():
    fields = {}
    with open('/proc/self/status') as f:
        for line in f:
            name, _, value = line.partition(':')
            fields[name] = value.strip()
    return {k: fields.get(k) for k in ('Uid', 'Gid', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd',
                                       'CapAmb', 'NoNewPrivs')}


def _packet_socket():
    def open_it():
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).close()
    return _try(open_it)


def _code_dir_write():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'written-by-user-code')
    def write():
        with open(path, 'w') as f:
            f.write('x')
        os.unlink(path)
    return _try(write)


def _first_line(path):
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError as e:
        return _errname(e.errno)


def main(req, res):
    payload = req.payload or {}
    sig = signal.SIGSTOP if payload.get('stop') else 0
    group = _try(lambda: os.kill(0, signal.SIGSTOP)) if payload.get('stop_group') else None
    targets = {}
    for pid in payload.get('pids', []):
        pid = int(pid)
        if pid == os.getpid():
            continue
        targets[str(pid)] = {
            'kill': _try(lambda: os.kill(pid, sig)),
            'prlimit': _prlimit(pid, payload.get('stop', False)),
            'ptrace': _ptrace(pid),
            'process_vm_readv': _vm_readv(pid),
            'pidfd_getfd': _pidfd_getfd(pid),
            'environ': _try(lambda: open('/proc/%d/environ' % pid, 'rb').close()),
            'mem': _read_proc(pid, 'mem'),
            'proc_dir': _proc_dir(pid),
            'proc_pidfd_signal': _proc_pidfd_signal(pid, sig),
        }
    return res.json({'pid': os.getpid(), 'ppid': os.getppid(),
                     'host_pid': int(os.readlink('/proc/self')),
                     'pgrp': os.getpgrp(), 'sid': os.getsid(0), 'stop_group': group,
                     'pid_max': _first_line('/proc/sys/kernel/pid_max'),
                     'nproc': list(resource.getrlimit(resource.RLIMIT_NPROC)),
                     'status': _status(),
                     'af_packet': _packet_socket(), 'code_dir_write': _code_dir_write(),
                     'tmpdir': os.environ.get('TMPDIR'), 'targets': targets})
