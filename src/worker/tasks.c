/* tasks.c -- the worker's side of --async-slots (see tasks.h): CALLs and CANCELs read
 * for the event loop, RESULT and OUTPUT frames written for its tasks. */
#include "worker/tasks.h"

#include <stdatomic.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/gate.h"
#include "proto/proto.h"
#include "proto/zygote.h"
#include "worker/pyembed.h"
#include "worker/sandbox.h"
#include "worker/worker.h"

/* (seq, id, body, head, task): head is None, or (method, target, headers) for an HTTP
 * CALL; task is False for a CALL to run alone (the master saw no coroutine main yet). */
static PyObject *call_tuple(const call_t *c)
{
    PyObject *head;
    if (c->flags & PROTO_CALL_HTTP) {
        PyObject *headers = wchan_call_headers(c);
        if (headers == NULL)
            return NULL;
        head = Py_BuildValue("(y#y#N)", (const char *)c->method, (Py_ssize_t)c->method_len,
                             (const char *)c->target, (Py_ssize_t)c->target_len, headers);
        if (head == NULL)
            return NULL;
    } else {
        head = Py_NewRef(Py_None);
    }
    return Py_BuildValue("(Is#y#NO)", c->seq, (const char *)c->id, (Py_ssize_t)c->id_len,
                         (const char *)c->body, (Py_ssize_t)c->body_len, head,
                         (c->flags & PROTO_CALL_TASK) ? Py_True : Py_False);
}

void tasks_run(const call_t *first, size_t consumed)
{
    PyObject *call = call_tuple(first);
    wchan_consume(consumed);
    PyObject *serve = PyObject_GetAttrString(pyembed_runtime(), "serve_tasks");
    PyObject *done = call && serve ? PyObject_CallFunction(serve, "Oi", call, wchan_fd()) : NULL;
    /* serve_tasks returns only if something is badly wrong. */
    log_msg(LOG_ALERT, "pyrt_runtime.serve_tasks returned");
    if (PyErr_Occurred())
        PyErr_Print();
    Py_XDECREF(done);
    _exit(WORKER_EXIT_PROTOCOL);
}

/* One frame the worker got while in the loop, appended to `out`: a CALL it won at the
 * gate as a tuple, a CANCEL as its seq. -1 with a Python error. */
static int take_frame(uint32_t type, uint32_t length, PyObject *out)
{
    PyObject *item = NULL;
    if (type == PROTO_MSG_CALL) {
        call_t c;
        wchan_parse_call(0, length, &c);
        /* A task has no gate slot (it is never taken back); a CALL to run alone has. */
        gate_outcome_t says =
            c.flags & PROTO_CALL_TASK ? GATE_WON : gate_claim(wchan_gate(), c.seq);
        if (says == GATE_CANCELLED)
            return 0;
        if (says != GATE_WON) {
            log_msg(LOG_ERROR, "the gate slot of call %u is in a state nobody made", c.seq);
            _exit(WORKER_EXIT_PROTOCOL);
        }
        item = call_tuple(&c);
    } else if (type == PROTO_MSG_CANCEL) {
        proto_reader_t r;
        proto_reader_init(&r, wchan_input()->data + PROTO_HEADER_SIZE, length);
        uint32_t seq = proto_get_u32(&r);
        if (r.error || r.left) {
            log_msg(LOG_ALERT, "malformed CANCEL frame from the master");
            _exit(WORKER_EXIT_PROTOCOL);
        }
        item = PyLong_FromUnsignedLong(seq);
    } else {
        log_msg(LOG_ALERT, "unexpected frame from the master for tasks (type %u)", type);
        _exit(WORKER_EXIT_PROTOCOL);
    }
    if (item == NULL)
        return -1;
    int rc = PyList_Append(out, item);
    Py_DECREF(item);
    return rc;
}

PyObject *tasks_py_read_frames(PyObject *self, PyObject *args)
{
    (void)self;
    int do_read;
    if (!PyArg_ParseTuple(args, "p", &do_read))
        return NULL;
    if (do_read)
        wchan_read_more();
    PyObject *out = PyList_New(0);
    uint32_t type, length;
    while (out && wchan_buffered_frame(0, &type, &length)) {
        int rc = take_frame(type, length, out);
        wchan_consume(PROTO_HEADER_SIZE + (size_t)length);
        if (rc < 0)
            Py_CLEAR(out);
    }
    return out;
}

PyObject *tasks_py_send_result(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned int seq;
    PyObject *answer;
    if (!PyArg_ParseTuple(args, "IO", &seq, &answer))
        return NULL;
    uint32_t flags =
        wchan_send_answer(seq, answer, worker_memory_short() ? PROTO_RESULT_RECYCLE : 0);
    return PyLong_FromUnsignedLong(flags);
}

PyObject *tasks_py_output(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned int seq, stream;
    const char *data;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "IIy#", &seq, &stream, &data, &len))
        return NULL;
    wchan_send_text(PROTO_MSG_OUTPUT, seq, stream ? PROTO_OUTPUT_STDERR : PROTO_OUTPUT_STDOUT, data,
                    (size_t)len);
    Py_RETURN_NONE;
}

PyObject *tasks_py_running(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned int seq;
    if (!PyArg_ParseTuple(args, "I", &seq))
        return NULL;
    atomic_store_explicit(&wchan_gate()->running, seq, memory_order_relaxed);
    Py_RETURN_NONE;
}

PyObject *tasks_py_cancelled(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned int seq;
    if (!PyArg_ParseTuple(args, "I", &seq))
        return NULL;
    wchan_send_u32(PROTO_MSG_CANCELLED, seq);
    Py_RETURN_NONE;
}

PyObject *tasks_py_end_execution(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    sandbox_end_execution();
    Py_RETURN_NONE;
}
