/* channel.c -- the worker's end of its channel to the master (see channel.h). */
#include "worker/channel.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "common/writev.h"
#include "proto/proto.h"
#include "proto/zygote.h"

#define MAX_FRAME (1024u * 1024 * 1024)
#define READ_SIZE 65536

/* The channel, for frames from Python threads too (context.log): every frame is
 * written whole under this lock, taken with the GIL released (a thread holding the GIL
 * must never wait for a writer that waits for the GIL). */
static int channel_fd = -1;
static pthread_mutex_t channel_lock = PTHREAD_MUTEX_INITIALIZER;
static gate_t *channel_gate;
static buf_t input = BUF_INIT;
static size_t max_body = SIZE_MAX;

void wchan_init(int fd, gate_t *gate)
{
    channel_fd = fd;
    channel_gate = gate;
}

int wchan_fd(void)
{
    return channel_fd;
}

gate_t *wchan_gate(void)
{
    return channel_gate;
}

void wchan_limit_body(size_t bytes)
{
    max_body = bytes;
}

buf_t *wchan_input(void)
{
    return &input;
}

int wchan_write(struct iovec *iov, int count)
{
    int rc;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&channel_lock);
    rc = writev_fully(channel_fd, iov, count);
    pthread_mutex_unlock(&channel_lock);
    Py_END_ALLOW_THREADS
    return rc;
}

/* One read into the input, with the GIL released: bytes read, or -1 at EOF/error. */
static ssize_t read_once(size_t want)
{
    buf_reserve(&input, want < READ_SIZE ? READ_SIZE : want);
    for (;;) {
        ssize_t n;
        Py_BEGIN_ALLOW_THREADS
        n = read(channel_fd, input.data + input.len, input.cap - input.len - 1);
        Py_END_ALLOW_THREADS
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        input.len += (size_t)n;
        return n;
    }
}

void wchan_read_more(void)
{
    if (read_once(READ_SIZE) < 0)
        _exit(0); /* the master closed the channel: stop */
}

int wchan_buffered_frame(size_t offset, uint32_t *type, uint32_t *length)
{
    if (input.len < offset + PROTO_HEADER_SIZE)
        return 0;
    proto_header_decode((const uint8_t *)input.data + offset, type, length);
    if (*length > MAX_FRAME) {
        log_msg(LOG_ALERT, "frame from the master over the size limit (type %u, %u bytes)", *type,
                *length);
        _exit(WORKER_EXIT_PROTOCOL);
    }
    return input.len >= offset + PROTO_HEADER_SIZE + (size_t)*length;
}

void wchan_read_frame(size_t offset, uint32_t *type, uint32_t *length)
{
    while (!wchan_buffered_frame(offset, type, length)) {
        size_t want = input.len < offset + PROTO_HEADER_SIZE
                          ? offset + PROTO_HEADER_SIZE - input.len
                          : offset + PROTO_HEADER_SIZE + (size_t)*length - input.len;
        if (read_once(want) < 0)
            _exit(0);
    }
}

void wchan_consume(size_t n)
{
    buf_consume(&input, n);
    /* Do not keep a 20 MiB buffer for the next hello -- unless it already holds (part
     * of) the next CALL. */
    if (input.cap > 4 * 1024 * 1024 && input.len == 0)
        buf_free(&input);
}

void wchan_parse_call(size_t offset, uint32_t length, call_t *c)
{
    proto_reader_t r;
    proto_reader_init(&r, input.data + offset + PROTO_HEADER_SIZE, length);
    c->id = proto_get_bytes(&r, &c->id_len);
    (void)proto_get_u32(&r); /* the timeout: the master enforces it */
    c->seq = proto_get_u32(&r);
    c->flags = proto_get_u32(&r);
    c->method = c->target = c->headers = NULL;
    c->method_len = c->target_len = c->header_count = 0;
    c->headers_len = 0;
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

PyObject *wchan_call_headers(const call_t *c)
{
    PyObject *list = PyList_New(c->header_count);
    proto_reader_t r;
    proto_reader_init(&r, c->headers, c->headers_len);
    for (uint32_t i = 0; list && i < c->header_count; i++) {
        uint32_t nlen, vlen;
        const uint8_t *name = proto_get_bytes(&r, &nlen);
        const uint8_t *value = proto_get_bytes(&r, &vlen);
        PyObject *pair =
            r.error ? NULL
                    : Py_BuildValue("(y#y#)", name, (Py_ssize_t)nlen, value, (Py_ssize_t)vlen);
        if (pair == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, pair); /* steals the reference */
    }
    return list;
}

static void write_or_exit(buf_t *b)
{
    struct iovec iov = {b->data, b->len};
    if (wchan_write(&iov, 1) < 0)
        _exit(0); /* the master closed the channel */
}

void wchan_send_text(uint32_t type, uint32_t seq, uint32_t stream, const char *text, size_t len)
{
    buf_t b = BUF_INIT;
    proto_put_text_frame(&b, type, seq, stream, text, len);
    write_or_exit(&b);
    buf_free(&b);
}

void wchan_send_u32(uint32_t type, uint32_t value)
{
    buf_t b = BUF_INIT;
    size_t start = proto_frame_begin(&b, type);
    proto_put_u32(&b, value);
    proto_frame_end(&b, start, 0);
    write_or_exit(&b);
    buf_free(&b);
}

/* An answer of the worker's own: {"message": ..., "code": status}. */
static void send_error(uint32_t seq, uint32_t status, const char *message)
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
    write_or_exit(&b);
    buf_free(&b);
    buf_free(&body);
}

/* Fills `meta` with the RESULT frame up to the body; the body itself is *body. */
static int encode_result(PyObject *result, uint32_t seq, buf_t *meta, const char **body,
                         Py_ssize_t *body_len, uint32_t *flags)
{
    PyObject *headers;
    long status, own_flags;
    PyObject *body_obj;
    if (!PyTuple_Check(result) || !PyArg_ParseTuple(result, "lO!O!l", &status, &PyList_Type,
                                                    &headers, &PyBytes_Type, &body_obj, &own_flags))
        return -1;
    *flags |= (uint32_t)own_flags;
    Py_ssize_t count = PyList_GET_SIZE(headers);
    size_t start = proto_frame_begin(meta, PROTO_MSG_RESULT);
    proto_put_u32(meta, seq);
    proto_put_u32(meta, (uint32_t)status);
    proto_put_u32(meta, *flags);
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
    return 0;
}

uint32_t wchan_send_answer(uint32_t seq, PyObject *result, uint32_t flags)
{
    const char *body = NULL;
    Py_ssize_t body_len = 0;
    buf_t meta = BUF_INIT;
    if (result == NULL || encode_result(result, seq, &meta, &body, &body_len, &flags) < 0) {
        log_msg(LOG_ALERT, "pyrt_runtime did not return an answer:");
        PyErr_Print();
        buf_free(&meta);
        send_error(seq, 500, "pyrt internal error: the worker could not encode the answer");
        return 0;
    }
    if ((size_t)body_len > max_body) {
        /* Not sent: the master would refuse it anyway, and 20 MiB need not cross. */
        char msg[160];
        snprintf(msg, sizeof(msg), "response body too large: %zd bytes, the limit is %zu", body_len,
                 max_body);
        buf_free(&meta);
        send_error(seq, 500, msg);
        return 0;
    }
    struct iovec iov[2] = {{meta.data, meta.len}, {(void *)body, (size_t)body_len}};
    int rc = wchan_write(iov, body_len ? 2 : 1);
    buf_free(&meta);
    if (rc < 0)
        _exit(0);
    return flags;
}
