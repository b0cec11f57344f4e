/* channel.h -- the worker's end of its channel to the master: whole frames read and
 * written, shared by the loop that runs one execution at a time (worker.c) and the
 * event loop that runs tasks (tasks.c). The master is trusted here; what goes to it is
 * checked there. */
#ifndef PYRT_WORKER_CHANNEL_H
#define PYRT_WORKER_CHANNEL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/buf.h"
#include "proto/gate.h"

/* A CALL frame, read. Every pointer points into the channel's input buffer: valid
 * until wchan_consume(). */
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

/* Once, in the new worker: its channel and the page shared with the master. */
void wchan_init(int fd, gate_t *gate);
int wchan_fd(void);
gate_t *wchan_gate(void);

/* --max-body: a larger response body is not sent; a 500 saying so is. */
void wchan_limit_body(size_t bytes);

/* What has been read from the master and not consumed yet. */
buf_t *wchan_input(void);

/* Blocks until the frame at `offset` of the input is whole: its type and length. The
 * worker exits when the master closes the channel or sends a frame over the limit. */
void wchan_read_frame(size_t offset, uint32_t *type, uint32_t *length);

/* The frame at `offset` of the input, if it is whole already: 1 (type, length), or 0. */
int wchan_buffered_frame(size_t offset, uint32_t *type, uint32_t *length);

/* One read of what the master sent, appended to the input: after the fd polled
 * readable, so it does not block. The worker exits at EOF. */
void wchan_read_more(void);

/* Drops the first `n` bytes of the input (frames handled). */
void wchan_consume(size_t n);

/* The CALL frame of `length` bytes at `offset`; exits on a malformed one. */
void wchan_parse_call(size_t offset, uint32_t length, call_t *c);

/* The encoded header pairs of an HTTP CALL, as a list of (bytes, bytes); NULL with a
 * Python error. */
PyObject *wchan_call_headers(const call_t *c);

/* Writes a whole frame (iov), under the channel's lock. Called with the GIL held; it
 * releases it while writing. 0, or -1 when the master has gone. */
int wchan_write(struct iovec *iov, int count);

/* A LOG or OUTPUT frame (proto_put_text_frame); exits when the master has gone. */
void wchan_send_text(uint32_t type, uint32_t seq, uint32_t stream, const char *text, size_t len);

/* A frame of one u32 (READY). */
void wchan_send_u32(uint32_t type, uint32_t value);

/* The answer of execution `seq`: `result` is what pyrt_runtime returned, (status,
 * headers, body, flags); `flags` are added to its own. An answer that cannot be
 * encoded or is over --max-body becomes a 500 that says why. Returns the RESULT's
 * flags (0 for such a 500); exits when the master has gone. */
uint32_t wchan_send_answer(uint32_t seq, PyObject *result, uint32_t flags);

#endif
