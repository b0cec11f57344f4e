/* tasks.h -- the worker's side of --async-slots: after the first CALL flagged TASK, the
 * worker's one asyncio event loop (pyrt_runtime.serve_tasks) runs executions side by
 * side, and reads the channel itself through the functions below (module
 * _pyrt_worker). */
#ifndef PYRT_WORKER_TASKS_H
#define PYRT_WORKER_TASKS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>

#include "worker/channel.h"

/* Hands the worker to the event loop, `first` (whose frame is the first `consumed`
 * bytes of the channel's input) its first task. Never returns. */
void tasks_run(const call_t *first, size_t consumed) __attribute__((noreturn));

PyObject *tasks_py_read_frames(PyObject *self, PyObject *args);
PyObject *tasks_py_send_result(PyObject *self, PyObject *args);
PyObject *tasks_py_output(PyObject *self, PyObject *args);
PyObject *tasks_py_running(PyObject *self, PyObject *args);
PyObject *tasks_py_cancelled(PyObject *self, PyObject *args);
PyObject *tasks_py_end_execution(PyObject *self, PyObject *args);

/* Their entries in _pyrt_worker's method table. */
#define TASKS_METHODS                                                                              \
    {"read_frames", tasks_py_read_frames, METH_VARARGS,                                            \
     "read_frames(read): the CALLs (tuples) and CANCELs (seqs) the master sent"},                  \
        {"send_result", tasks_py_send_result, METH_VARARGS,                                        \
         "send_result(seq, answer): a task's RESULT; returns its flags"},                          \
        {"output", tasks_py_output, METH_VARARGS,                                                  \
         "output(seq, stream, data): whole lines a task printed"},                                 \
        {"cancelled", tasks_py_cancelled, METH_VARARGS,                                            \
         "cancelled(seq): the CANCEL for task seq was read"},                                      \
        {"end_execution", tasks_py_end_execution, METH_NOARGS,                                     \
         "end_execution(): nothing runs: end what the executions left (sandbox.h)"},               \
    {                                                                                              \
        "running", tasks_py_running, METH_VARARGS,                                                 \
            "running(seq): the task whose code runs on the loop now (0: none)"                     \
    }

#endif
