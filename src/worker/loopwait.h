/* loopwait.h -- the wait of the worker's event loop, to the microsecond: epoll_pwait2,
 * where Python's own epoll rounds every timeout up to a whole millisecond (see
 * loopwait.c for why that matters). */
#ifndef PYRT_WORKER_LOOPWAIT_H
#define PYRT_WORKER_LOOPWAIT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* _pyrt_worker.epoll_wait(epfd, timeout, maxevents): [(fd, events)], the events of at
 * most `maxevents` fds; timeout in seconds (None: no limit, <= 0: none at all). */
PyObject *loopwait_py_epoll_wait(PyObject *self, PyObject *args);

#define LOOPWAIT_METHODS                                                                           \
    {                                                                                              \
        "epoll_wait", loopwait_py_epoll_wait, METH_VARARGS,                                        \
            "epoll_wait(epfd, timeout, maxevents): [(fd, events)], timeout to the microsecond"     \
    }

#endif
