/* worker.c -- a worker's loop (see worker.h).
 *
 * The channel is blocking: a worker does one thing at a time, until the master sends
 * a CALL flagged TASK, which hands the worker to the event loop of tasks.c for good.
 * The GIL is released while it waits for the master or writes to it, so threads the
 * user's module started keep running between executions. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "worker/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "proto/gate.h"
#include "proto/proto.h"
#include "proto/zygote.h"
#include "worker/channel.h"
#include "worker/loopwait.h"
#include "worker/pyembed.h"
#include "worker/sandbox.h"
#include "worker/tasks.h"

static long memory_mib;
static uint32_t current_seq; /* the execution running now: LOG frames carry it */
static rlim_t memory_hard;
static int statm_fd = -1;

/* The address space in use now, from /proc/self/statm (kept open: one pread). */
static rlim_t address_space(void)
{
    char text[128];
    ssize_t n = pread(statm_fd, text, sizeof(text) - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    return (rlim_t)strtoull(text, NULL, 10) * (rlim_t)sysconf(_SC_PAGESIZE);
}

void worker_limit_body(size_t bytes)
{
    wchan_limit_body(bytes);
}

int worker_limit_memory(long mib)
{
    if (mib <= 0)
        return 0;
    statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (statm_fd < 0)
        return -1;
    /* Each glibc malloc arena reserves 64 MiB of address space: with one per thread, a
     * few threads would eat the budget without allocating anything. And a fixed mmap
     * threshold: glibc's moving one keeps freed large blocks in the heap, so what an
     * earlier execution freed would count against the next one's allowance. */
    (void)mallopt(M_ARENA_MAX, 2);
    (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    memory_mib = mib;
    memory_hard = address_space() + (rlim_t)(2 * mib) * 1024 * 1024;
    struct rlimit rl = {memory_hard, memory_hard};
    return setrlimit(RLIMIT_AS, &rl);
}

/* Before an execution: mib more than now, within the hard limit. */
static void limit_execution(void)
{
    (void)malloc_trim(0); /* what was freed is not "held" */
    rlim_t soft = address_space() + (rlim_t)memory_mib * 1024 * 1024;
    struct rlimit rl = {soft < memory_hard ? soft : memory_hard, memory_hard};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        log_msg(LOG_WARN, "setrlimit(RLIMIT_AS): %s", strerror(errno));
}

/* After it: is there still room for a whole execution's allowance? */
static bool headroom_short(void)
{
    return address_space() + (rlim_t)memory_mib * 1024 * 1024 > memory_hard;
}

/* _pyrt_worker.log(stream, text[, seq]): one context.log (0) or context.error (1) line,
 * sent to the master at once, so that a line logged before a hang or a crash is kept.
 * A task names its execution (seq); else it is the one running now. */
static PyObject *py_log(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned int stream;
    const char *text;
    Py_ssize_t len;
    unsigned int seq = current_seq;
    if (!PyArg_ParseTuple(args, "Is#|I", &stream, &text, &len, &seq))
        return NULL;
    if (wchan_fd() < 0 || stream > 1)
        Py_RETURN_NONE; /* the zygote, or nonsense: nothing to send */
    wchan_send_text(PROTO_MSG_LOG, seq, stream, text, (size_t)len);
    Py_RETURN_NONE;
}

static PyMethodDef worker_methods[] = {
    {"log", py_log, METH_VARARGS, "Send one context.log (0) / context.error (1) line."},
    TASKS_METHODS,
    LOOPWAIT_METHODS,
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef worker_module = {
    PyModuleDef_HEAD_INIT,
    "_pyrt_worker",
    "pyrt's worker, as Python sees it.",
    -1,
    worker_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyObject *worker_module_init(void)
{
    return PyModule_Create(&worker_module);
}

/* A prefetched CALL after a RESULT flagged OUTPUT: the master's GO for it comes next
 * (see proto.h). Reads it behind the CALL; returns the GO frame's size. */
static size_t await_go(uint32_t call_length, uint32_t seq)
{
    size_t at = PROTO_HEADER_SIZE + (size_t)call_length;
    uint32_t type, length;
    wchan_read_frame(at, &type, &length);
    proto_reader_t r;
    proto_reader_init(&r, wchan_input()->data + at + PROTO_HEADER_SIZE, length);
    uint32_t go_seq = proto_get_u32(&r);
    if (type != PROTO_MSG_GO || r.error || go_seq != seq) {
        log_msg(LOG_ALERT, "expected GO %u from the master, got type %u", seq, type);
        _exit(WORKER_EXIT_PROTOCOL);
    }
    return PROTO_HEADER_SIZE + (size_t)length;
}

/* Runs one execution in Python: execute(id, body) or, for an HTTP CALL,
 * execute_http(id, method, target, headers, body). A new reference, or NULL. */
static PyObject *run_call(PyObject *execute, PyObject *execute_http, const call_t *call)
{
    if (!(call->flags & PROTO_CALL_HTTP))
        return PyObject_CallFunction(execute, "s#y#", (const char *)call->id,
                                     (Py_ssize_t)call->id_len, (const char *)call->body,
                                     (Py_ssize_t)call->body_len);
    PyObject *headers = wchan_call_headers(call);
    if (headers == NULL)
        return NULL;
    PyObject *result = PyObject_CallFunction(
        execute_http, "s#y#y#Oy#", (const char *)call->id, (Py_ssize_t)call->id_len,
        (const char *)call->method, (Py_ssize_t)call->method_len, (const char *)call->target,
        (Py_ssize_t)call->target_len, headers, (const char *)call->body,
        (Py_ssize_t)call->body_len);
    Py_DECREF(headers);
    return result;
}

void worker_limit_tasks(void)
{
    if (memory_mib <= 0)
        return;
    /* Tasks share the worker's memory: the whole allowance is theirs. */
    struct rlimit rl = {memory_hard, memory_hard};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        log_msg(LOG_WARN, "setrlimit(RLIMIT_AS): %s", strerror(errno));
}

bool worker_memory_short(void)
{
    return memory_mib > 0 && headroom_short();
}

void worker_run(int fd, gate_t *gate, pid_t pid)
{
    wchan_init(fd, gate);
    PyObject *execute = PyObject_GetAttrString(pyembed_runtime(), "execute");
    PyObject *execute_http = PyObject_GetAttrString(pyembed_runtime(), "execute_http");
    if (execute == NULL || execute_http == NULL) {
        PyErr_Print();
        _exit(WORKER_EXIT_PROTOCOL);
    }
    wchan_send_u32(PROTO_MSG_READY, (uint32_t)pid);

    bool output_pending = false; /* the last RESULT was flagged OUTPUT */
    for (;;) {
        uint32_t type, length;
        wchan_read_frame(0, &type, &length);
        if (type != PROTO_MSG_CALL) {
            log_msg(LOG_ALERT, "unexpected frame from the master (type %u, %u bytes)", type,
                    length);
            _exit(WORKER_EXIT_PROTOCOL);
        }
        call_t call;
        wchan_parse_call(0, length, &call);
        size_t consumed = PROTO_HEADER_SIZE + (size_t)length;
        if ((call.flags & PROTO_CALL_PREFETCHED) && output_pending) {
            consumed += await_go(length, call.seq);
            wchan_parse_call(0, length, &call); /* the buffer may have moved */
        }
        output_pending = false;

        if (call.flags & PROTO_CALL_TASK) {
            /* Tasks are never taken back, so they have no gate slot (proto.h). */
            worker_limit_tasks();
            tasks_run(&call, consumed); /* never returns */
        }
        gate_outcome_t gate_says = gate_claim(gate, call.seq);
        if (gate_says != GATE_WON) {
            if (gate_says != GATE_CANCELLED) {
                /* Only user code can have written that: this worker is not to be trusted. */
                log_msg(LOG_ERROR, "the gate slot of call %u is in a state nobody made", call.seq);
                _exit(WORKER_EXIT_PROTOCOL);
            }
            wchan_consume(consumed); /* taken back by the master: not ours to run */
            continue;
        }

        if (memory_mib > 0)
            limit_execution();
        current_seq = call.seq;
        PyObject *result = run_call(execute, execute_http, &call);
        sandbox_end_execution(); /* what it left running ends before its answer leaves */
        wchan_consume(consumed);
        uint32_t flags =
            wchan_send_answer(call.seq, result, worker_memory_short() ? PROTO_RESULT_RECYCLE : 0);
        Py_XDECREF(result);
        output_pending = (flags & PROTO_RESULT_OUTPUT) != 0;
        if (flags & PROTO_RESULT_RECYCLE)
            _exit(0); /* recycled: a CALL prefetched behind this one is the master's again */
    }
}
