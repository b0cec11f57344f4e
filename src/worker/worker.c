/* worker.c -- a worker's loop (see worker.h).
 *
 * The channel is blocking: a worker does one thing at a time. The GIL is released
 * while it waits for the master or writes to it, so threads the user's module started
 * keep running between executions. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "worker/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/log.h"
#include "proto/gate.h"
#include "proto/proto.h"
#include "proto/zygote.h"
#include "worker/pyembed.h"
#include "worker/sandbox.h"

#define MAX_FRAME (1024u * 1024 * 1024)

static long memory_mib;
/* The channel, for frames from Python threads too (context.log): every frame is
 * written whole under this lock, taken with the GIL released (a thread holding the GIL
 * must never wait for a writer that waits for the GIL). */
static int channel_fd = -1;
static pthread_mutex_t channel_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t current_seq; /* the execution running now: LOG frames carry it */
static size_t max_body = SIZE_MAX;
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
    max_body = bytes;
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

/* Writes a whole frame (iov) to the channel. Called with the GIL held; releases it. */
static int write_all(int fd, struct iovec *iov, int count)
{
    int rc = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&channel_lock);
    while (count > 0) {
        ssize_t n = writev(fd, iov, count);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        while (count > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    pthread_mutex_unlock(&channel_lock);
    Py_END_ALLOW_THREADS
    return rc;
}

/* _pyrt_worker.log(stream, text): one context.log (0) or context.error (1) line, sent
 * to the master at once, so that a line logged before a hang or a crash is kept. */
static PyObject *py_log(PyObject *self, PyObject *args)
{
    (void)self;
    unsigned int stream;
    const char *text;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "Is#", &stream, &text, &len))
        return NULL;
    if (channel_fd < 0 || stream > 1)
        Py_RETURN_NONE; /* the zygote, or nonsense: nothing to send */
    buf_t b = BUF_INIT;
    size_t start = proto_frame_begin(&b, PROTO_MSG_LOG);
    proto_put_u32(&b, current_seq);
    proto_put_u32(&b, stream);
    proto_put_bytes(&b, text, (size_t)len);
    proto_frame_end(&b, start, 0);
    struct iovec iov = {b.data, b.len};
    int rc = write_all(channel_fd, &iov, 1);
    buf_free(&b);
    if (rc < 0)
        _exit(0); /* the master closed the channel */
    Py_RETURN_NONE;
}

static PyMethodDef worker_methods[] = {
    {"log", py_log, METH_VARARGS, "Send one context.log (0) / context.error (1) line."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef worker_module = {
    PyModuleDef_HEAD_INIT, "_pyrt_worker", "pyrt's worker, as Python sees it.", -1,
    worker_methods, NULL, NULL, NULL, NULL,
};

PyObject *worker_module_init(void)
{
    return PyModule_Create(&worker_module);
}

/* Reads until `in` holds at least `want` bytes. 0, or -1 on EOF/error. */
static int read_at_least(int fd, buf_t *in, size_t want)
{
    while (in->len < want) {
        buf_reserve(in, want - in->len < 65536 ? 65536 : want - in->len);
        ssize_t n;
        Py_BEGIN_ALLOW_THREADS
        n = read(fd, in->data + in->len, in->cap - in->len - 1);
        Py_END_ALLOW_THREADS
        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        in->len += (size_t)n;
    }
    return 0;
}

static void send_simple(int fd, uint32_t type, uint32_t value)
{
    buf_t b = BUF_INIT;
    size_t start = proto_frame_begin(&b, type);
    proto_put_u32(&b, value);
    proto_frame_end(&b, start, 0);
    struct iovec iov = {b.data, b.len};
    if (write_all(fd, &iov, 1) < 0)
        _exit(0);
    buf_free(&b);
}

/* Fills `meta` with the RESULT frame up to the body; the body itself is *body. */
static int encode_result(PyObject *result, uint32_t seq, buf_t *meta, const char **body,
                         Py_ssize_t *body_len, uint32_t *flags_out)
{
    PyObject *headers;
    long status, flags;
    PyObject *body_obj;
    if (!PyArg_ParseTuple(result, "lO!O!l", &status, &PyList_Type, &headers, &PyBytes_Type,
                          &body_obj, &flags))
        return -1;
    Py_ssize_t count = PyList_GET_SIZE(headers);
    size_t start = proto_frame_begin(meta, PROTO_MSG_RESULT);
    proto_put_u32(meta, seq);
    proto_put_u32(meta, (uint32_t)status);
    proto_put_u32(meta, (uint32_t)flags | *flags_out);
    proto_put_u32(meta, (uint32_t)count);
    for (Py_ssize_t i = 0; i < count; i++) {
        const char *name, *value;
        Py_ssize_t nlen, vlen;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(headers, i), "s#s#", &name, &nlen, &value, &vlen))
            return -1;
        proto_put_bytes(meta, name, (size_t)nlen);
        proto_put_bytes(meta, value, (size_t)vlen);
    }
    *body = PyBytes_AS_STRING(body_obj);
    *body_len = PyBytes_GET_SIZE(body_obj);
    proto_put_u32(meta, (uint32_t)*body_len);
    proto_frame_end(meta, start, (size_t)*body_len);
    *flags_out |= (uint32_t)flags;
    return 0;
}

/* An answer of the worker's own: {"message": ..., "code": status}. */
static void send_error(int fd, uint32_t seq, uint32_t status, const char *message)
{
    buf_t body = BUF_INIT;
    json_error_body(&body, (int)status, message);
    buf_t b = BUF_INIT;
    size_t start = proto_frame_begin(&b, PROTO_MSG_RESULT);
    proto_put_u32(&b, seq);
    proto_put_u32(&b, status);
    proto_put_u32(&b, 0);
    proto_put_u32(&b, 1);
    proto_put_bytes(&b, "Content-Type", 12);
    proto_put_bytes(&b, "application/json", 16);
    proto_put_bytes(&b, body.data, body.len);
    proto_frame_end(&b, start, 0);
    struct iovec iov = {b.data, b.len};
    if (write_all(fd, &iov, 1) < 0)
        _exit(0);
    buf_free(&b);
    buf_free(&body);
}

/* Reads until the frame at `offset` in `in` is whole; its type and length. */
static void read_frame(int fd, buf_t *in, size_t offset, uint32_t *type, uint32_t *length)
{
    if (read_at_least(fd, in, offset + PROTO_HEADER_SIZE) < 0)
        _exit(0); /* the master closed the channel: stop */
    proto_header_decode((const uint8_t *)in->data + offset, type, length);
    if (*length > MAX_FRAME) {
        log_msg(LOG_ALERT, "frame from the master over the size limit (type %u, %u bytes)",
                *type, *length);
        _exit(WORKER_EXIT_PROTOCOL);
    }
    if (read_at_least(fd, in, offset + PROTO_HEADER_SIZE + (size_t)*length) < 0)
        _exit(0);
}

typedef struct call {
    const uint8_t *id;
    uint32_t id_len;
    uint32_t seq;
    uint32_t flags;
    const uint8_t *method, *target; /* PROTO_CALL_HTTP only */
    uint32_t method_len, target_len;
    uint32_t header_count;
    const uint8_t *headers; /* the encoded (name, value) pairs */
    size_t headers_len;
    const uint8_t *body;
    size_t body_len;
} call_t;

/* The encoded header pairs of an HTTP CALL, as a list of (bytes, bytes). */
static PyObject *headers_list(const call_t *c)
{
    PyObject *list = PyList_New(c->header_count);
    proto_reader_t r;
    proto_reader_init(&r, c->headers, c->headers_len);
    for (uint32_t i = 0; list && i < c->header_count; i++) {
        uint32_t nlen, vlen;
        const uint8_t *name = proto_get_bytes(&r, &nlen);
        const uint8_t *value = proto_get_bytes(&r, &vlen);
        PyObject *pair = r.error ? NULL
                                 : Py_BuildValue("(y#y#)", name, (Py_ssize_t)nlen, value,
                                                 (Py_ssize_t)vlen);
        if (pair == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, pair); /* steals the reference */
    }
    return list;
}

static void parse_call(const buf_t *in, uint32_t length, call_t *c)
{
    proto_reader_t r;
    proto_reader_init(&r, in->data + PROTO_HEADER_SIZE, length);
    c->id = proto_get_bytes(&r, &c->id_len);
    (void)proto_get_u32(&r); /* the timeout: the master enforces it */
    c->seq = proto_get_u32(&r);
    c->flags = proto_get_u32(&r);
    if (c->flags & PROTO_CALL_HTTP) {
        c->method = proto_get_bytes(&r, &c->method_len);
        c->target = proto_get_bytes(&r, &c->target_len);
        c->header_count = proto_get_u32(&r);
        c->headers = r.p;
        for (uint32_t i = 0; i < c->header_count && !r.error; i++) {
            uint32_t unused;
            (void)proto_get_bytes(&r, &unused);
            (void)proto_get_bytes(&r, &unused);
        }
        c->headers_len = r.error ? 0 : (size_t)(r.p - c->headers);
    }
    c->body = proto_get_rest(&r, &c->body_len);
    if (r.error) {
        log_msg(LOG_ALERT, "malformed CALL frame from the master");
        _exit(WORKER_EXIT_PROTOCOL);
    }
}

/* A prefetched CALL after a RESULT flagged OUTPUT: the master's GO for it comes next
 * (see proto.h). Reads it behind the CALL; returns the GO frame's size. */
static size_t await_go(int fd, buf_t *in, uint32_t call_length, uint32_t seq)
{
    size_t at = PROTO_HEADER_SIZE + (size_t)call_length;
    uint32_t type, length;
    read_frame(fd, in, at, &type, &length);
    proto_reader_t r;
    proto_reader_init(&r, in->data + at + PROTO_HEADER_SIZE, length);
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
    PyObject *headers = headers_list(call);
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

void worker_run(int fd, gate_t *gate)
{
    channel_fd = fd;
    PyObject *execute = PyObject_GetAttrString(pyembed_runtime(), "execute");
    PyObject *execute_http = PyObject_GetAttrString(pyembed_runtime(), "execute_http");
    if (execute == NULL || execute_http == NULL) {
        PyErr_Print();
        _exit(WORKER_EXIT_PROTOCOL);
    }
    send_simple(fd, PROTO_MSG_READY, (uint32_t)getpid());

    buf_t in = BUF_INIT;
    buf_t meta = BUF_INIT;
    bool output_pending = false; /* the last RESULT was flagged OUTPUT */
    for (;;) {
        uint32_t type, length;
        read_frame(fd, &in, 0, &type, &length);
        if (type != PROTO_MSG_CALL) {
            log_msg(LOG_ALERT, "unexpected frame from the master (type %u, %u bytes)", type,
                    length);
            _exit(WORKER_EXIT_PROTOCOL);
        }
        call_t call;
        parse_call(&in, length, &call);
        size_t consumed = PROTO_HEADER_SIZE + (size_t)length;
        if ((call.flags & PROTO_CALL_PREFETCHED) && output_pending) {
            consumed += await_go(fd, &in, length, call.seq);
            parse_call(&in, length, &call); /* the buffer may have moved */
        }
        output_pending = false;

        gate_outcome_t gate_says = gate_claim(gate, call.seq);
        if (gate_says != GATE_WON) {
            if (gate_says != GATE_CANCELLED) {
                /* Only user code can have written that: this worker is not to be trusted. */
                log_msg(LOG_ERROR, "the gate slot of call %u is in a state nobody made",
                        call.seq);
                _exit(WORKER_EXIT_PROTOCOL);
            }
            buf_consume(&in, consumed); /* taken back by the master: not ours to run */
            continue;
        }

        if (memory_mib > 0)
            limit_execution();
        current_seq = call.seq;
        PyObject *result = run_call(execute, execute_http, &call);
        sandbox_end_execution(); /* what it left running ends before its answer leaves */
        buf_consume(&in, consumed);
        /* Do not keep a 20 MiB buffer for the next hello -- unless it already holds
         * (part of) the next CALL, prefetched behind this one. */
        if (in.cap > 4 * 1024 * 1024 && in.len == 0)
            buf_free(&in);

        const char *out_body = NULL;
        Py_ssize_t out_len = 0;
        buf_clear(&meta);
        uint32_t flags = memory_mib > 0 && headroom_short() ? PROTO_RESULT_RECYCLE : 0;
        if (result == NULL ||
            encode_result(result, call.seq, &meta, &out_body, &out_len, &flags) < 0) {
            log_msg(LOG_ALERT, "pyrt_runtime.execute did not return an answer:");
            PyErr_Print();
            Py_XDECREF(result);
            send_error(fd, call.seq, 500,
                       "pyrt internal error: the worker could not encode the answer");
            continue;
        }
        output_pending = (flags & PROTO_RESULT_OUTPUT) != 0;
        if ((size_t)out_len > max_body) {
            /* Not sent: the master would refuse it anyway, and 20 MiB need not cross. */
            char msg[160];
            snprintf(msg, sizeof(msg), "response body too large: %zd bytes, the limit is %zu",
                     out_len, max_body);
            Py_DECREF(result);
            send_error(fd, call.seq, 500, msg);
            output_pending = false; /* the error frame carries no OUTPUT flag */
            continue;
        }
        struct iovec iov[2] = {{meta.data, meta.len}, {(void *)out_body, (size_t)out_len}};
        int rc = write_all(fd, iov, out_len ? 2 : 1);
        Py_DECREF(result);
        if (rc < 0 || (flags & PROTO_RESULT_RECYCLE))
            _exit(0); /* recycled: a CALL prefetched behind this one is the master's again */
    }
}
