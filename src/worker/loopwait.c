/* loopwait.c -- the worker's event loop waits to the microsecond (see loopwait.h).
 *
 * Why: asyncio asks its selector to wait until the next timer is due, and Python's
 * select.epoll rounds that up to whole milliseconds, so every asyncio.sleep() and
 * call_later() fires up to 1 ms late, 0.5 ms on average, more under load, when the
 * loop mostly waits for timers due in a fraction of a millisecond. An I/O-bound
 * function pays it on every await of a timer. epoll_pwait2 (Linux 5.11) takes a
 * timespec; on an older kernel the wait falls back to epoll_wait in milliseconds,
 * rounded up as Python does (never early: asyncio would wait again at once).
 *
 * The kernel may also end a timed wait up to the thread's timer slack late (50 us by
 * default, to batch wake-ups): the loop's thread asks for 1 us. */
#include "worker/loopwait.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>

#define LOOP_TIMER_SLACK_NS 1000

static bool pwait2_missing; /* set once epoll_pwait2 is refused: epoll_wait from then on */
static bool slack_set;      /* the loop's thread asked for LOOP_TIMER_SLACK_NS */

/* epoll_pwait2, or epoll_wait in milliseconds (rounded up). `timeout` < 0: no limit. */
static int wait_events(int epfd, struct epoll_event *events, int maxevents, double timeout)
{
    if (!slack_set) {
        slack_set = true; /* once: a refusal only costs the default slack */
        (void)prctl(PR_SET_TIMERSLACK, LOOP_TIMER_SLACK_NS, 0, 0, 0);
    }
    if (!pwait2_missing) {
        struct timespec ts;
        const struct timespec *limit = NULL;
        if (timeout >= 0) {
            double whole = floor(timeout);
            ts.tv_sec = (time_t)whole;
            ts.tv_nsec = (long)((timeout - whole) * 1e9);
            if (ts.tv_nsec > 999999999)
                ts.tv_nsec = 999999999;
            limit = &ts;
        }
        int n = epoll_pwait2(epfd, events, maxevents, limit, NULL);
        /* ENOSYS: a kernel before 5.11; EPERM: a seccomp filter that does not know
         * the call (epoll_pwait2 itself never says EPERM). */
        if (n >= 0 || (errno != ENOSYS && errno != EPERM))
            return n;
        pwait2_missing = true;
    }
    int ms = timeout < 0 ? -1 : (int)fmin(ceil(timeout * 1e3), (double)INT_MAX);
    return epoll_wait(epfd, events, maxevents, ms);
}

PyObject *loopwait_py_epoll_wait(PyObject *self, PyObject *args)
{
    (void)self;
    int epfd, maxevents;
    PyObject *timeout_obj;
    if (!PyArg_ParseTuple(args, "iOi", &epfd, &timeout_obj, &maxevents))
        return NULL;
    double timeout = -1; /* None: until something is ready */
    if (timeout_obj != Py_None) {
        timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(timeout > 0)) /* 0, negative or NaN: do not wait */
            timeout = 0;
        if (timeout > 86400.0 * 365) /* past what a timespec or int of ms must hold */
            timeout = 86400.0 * 365;
    }
    if (maxevents < 1 || maxevents > 65536)
        maxevents = maxevents < 1 ? 1 : 65536;
    struct epoll_event *events = PyMem_Malloc(sizeof(*events) * (size_t)maxevents);
    if (events == NULL)
        return PyErr_NoMemory();
    int n;
    Py_BEGIN_ALLOW_THREADS
    n = wait_events(epfd, events, maxevents, timeout);
    Py_END_ALLOW_THREADS
    if (n < 0) {
        int saved = errno;
        PyMem_Free(events);
        if (saved == EINTR) /* as Python's epoll: a signal handler may raise */
            return PyErr_CheckSignals() < 0 ? NULL : PyList_New(0);
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *ready = PyList_New(n);
    for (int i = 0; ready != NULL && i < n; i++) {
        PyObject *pair = Py_BuildValue("(iI)", events[i].data.fd, (unsigned)events[i].events);
        if (pair == NULL)
            Py_CLEAR(ready);
        else
            PyList_SET_ITEM(ready, i, pair);
    }
    PyMem_Free(events);
    return ready;
}
