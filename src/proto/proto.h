/* proto.h -- the frames spoken between the master, the zygote and the workers.
 *
 * Encoding and decoding only: no sockets, no policy, so it is unit-tested on its own.
 *
 * A frame is an 8-byte header, then `length` bytes of payload:
 *
 *     u32 length | u32 type | payload
 *
 * Integers are little-endian. A payload is a sequence of fields: u32 integers and byte
 * strings (a u32 length, then the bytes). Which fields a type carries:
 *
 *   ZYGOTE_READY  zygote -> master   u32 flags (ZYGOTE_FLAG_NAMESPACES: its workers get
 *                                    namespaces), bytes why they do not (when asked)
 *   SPAWN         master -> zygote   u32 worker id, u32 uid (0: the zygote's); 4 fds
 *                                    ride along (SCM_RIGHTS):
 *                                    the worker's channel, its stdout and stderr pipes,
 *                                    and its gate page (gate.h)
 *   SPAWNED       zygote -> master   u32 worker id, u32 pid (or 0), bytes error, u32 flags
 *                                    (ZYGOTE_FLAG_NAMESPACES: this worker has them)
 *   READY         worker -> master   u32 pid (as the master sees it)
 *   CALL          master -> worker   bytes request id, u32 timeout in ms, u32 seq,
 *                                    u32 call flags, then the raw JSON body: the rest
 *   RESULT        worker -> master   u32 seq, u32 status, u32 flags, u32 header count,
 *                                    (bytes name, bytes value) per header, bytes body
 *   GO            master -> worker   u32 seq: a prefetched CALL may start (below)
 *   LOG           worker -> master   u32 seq, u32 stream (0 logs, 1 errors), bytes text:
 *                                    one context.log / context.error line (v5)
 *   CANCEL        master -> worker   u32 seq: a task's deadline passed (below)
 *   OUTPUT        worker -> master   u32 seq, u32 stream (0 stdout, 1 stderr), bytes text:
 *                                    whole lines a task printed (below)
 *   CANCELLED     worker -> master   u32 seq: a CANCEL was read (below)
 *
 * A CALL flagged HTTP (v5) carries the request's head between the flags and the body:
 * bytes method, bytes target (path and query), u32 header count, then (bytes name,
 * bytes value) per header, names lower-cased, in the order received.
 *
 * Prefetch (gate.h): a CALL flagged PREFETCHED was sent while the worker was still
 * busy. The worker claims every CALL on its gate slot before running it and skips one
 * the master took back. After a RESULT flagged OUTPUT, the master reads the output pipes
 * before anything the next execution writes may land there: so a worker that sent such
 * a RESULT runs a PREFETCHED CALL only after the master's GO for it.
 *
 * Tasks (--async-slots): a CALL flagged TASK may run beside others on the worker's one
 * event loop. It has no gate slot: the master never takes a task back, and more tasks
 * than the gate has slots may be unread at once. The first such CALL switches the
 * worker to that loop for good; from then on the master may send it more TASK CALLs
 * before the earlier ones answered, never a PREFETCHED one, and a CALL without TASK
 * only while no task runs (the worker runs it alone, its loop stopped). What an
 * execution prints through sys.stdout/stderr on such a worker comes as OUTPUT frames
 * with its seq (the pipes cannot say whose a line is). A RESULT is flagged ASYNC when
 * main was a coroutine function, SYNC when main ran and returned something else (an
 * error before main says neither): that is how the master learns whether a function's
 * executions may share a worker. At a task's deadline the master answers the client
 * itself and sends CANCEL. The worker answers CANCELLED as soon as it reads it, which
 * shows that its loop turns; the task's RESULT, whatever it says, comes when it ends.
 *
 * The master never trusts what a worker sends (user code can write to the channel):
 * every length is checked against what is left, and the caller validates values. */
#ifndef PYRT_PROTO_H
#define PYRT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define PROTO_HEADER_SIZE 8

enum proto_msg {
    PROTO_MSG_ZYGOTE_READY = 1,
    PROTO_MSG_SPAWN = 2,
    PROTO_MSG_SPAWNED = 3,
    PROTO_MSG_READY = 4,
    PROTO_MSG_CALL = 5,
    PROTO_MSG_RESULT = 6,
    PROTO_MSG_GO = 7,
    PROTO_MSG_LOG = 8,
    PROTO_MSG_CANCEL = 9,
    PROTO_MSG_OUTPUT = 10,
    PROTO_MSG_CANCELLED = 11,
};

/* CALL flags. */
#define PROTO_CALL_PREFETCHED 0x1u /* sent before the worker's previous RESULT was read */
#define PROTO_CALL_HTTP 0x2u       /* the request's head comes before the body (v5) */
#define PROTO_CALL_TASK 0x4u       /* run it as a task on the worker's event loop */

/* RESULT flags. */
#define PROTO_RESULT_RECYCLE 0x1u /* the worker asks to be replaced after this answer */
#define PROTO_RESULT_OUTPUT 0x2u  /* sys.stdout/stderr were written: read the pipes first */
#define PROTO_RESULT_ASYNC 0x4u   /* main was a coroutine function: its kind may share */
#define PROTO_RESULT_SYNC 0x8u    /* main ran and returned no awaitable: its kind runs alone */

/* OUTPUT streams. */
#define PROTO_OUTPUT_STDOUT 0u
#define PROTO_OUTPUT_STDERR 1u

void proto_header_encode(uint8_t out[PROTO_HEADER_SIZE], uint32_t type, uint32_t length);
void proto_header_decode(const uint8_t in[PROTO_HEADER_SIZE], uint32_t *type, uint32_t *length);

/* Writing: appends to a buffer. A frame is begun, filled, then ended, which writes the
 * final length into the header. `extra` is the length of bytes the caller will send
 * right after the buffer (writev), counted in the header but not stored. */
size_t proto_frame_begin(buf_t *b, uint32_t type);
void proto_frame_end(buf_t *b, size_t frame_start, size_t extra);
void proto_put_u32(buf_t *b, uint32_t v);
void proto_put_bytes(buf_t *b, const void *data, size_t len);

/* The head of a CALL flagged HTTP: method, target, then `count` header pairs that the
 * caller encoded in `pairs` with proto_put_bytes (name, then value). */
void proto_put_http_head(buf_t *b, const char *method, size_t method_len, const char *target,
                         size_t target_len, uint32_t count, const buf_t *pairs);

/* LOG and OUTPUT frames share one layout: u32 seq, u32 stream, bytes text. The whole
 * frame, appended to `b`. */
void proto_put_text_frame(buf_t *b, uint32_t type, uint32_t seq, uint32_t stream, const void *text,
                          size_t len);

/* Reading a payload. Every getter fails (returns 0 / NULL and sets `error`) once the
 * payload is short; check `error` once at the end. */
typedef struct proto_reader {
    const uint8_t *p;
    size_t left;
    int error;
} proto_reader_t;

void proto_reader_init(proto_reader_t *r, const void *payload, size_t len);
uint32_t proto_get_u32(proto_reader_t *r);
const uint8_t *proto_get_bytes(proto_reader_t *r, uint32_t *len);
const uint8_t *proto_get_rest(proto_reader_t *r, size_t *len);

/* A LOG or OUTPUT payload: 0, or -1 when it is short or has bytes left over. `text`
 * points into the payload. The caller checks `stream`. */
typedef struct proto_text {
    uint32_t seq;
    uint32_t stream;
    const uint8_t *text;
    uint32_t len;
} proto_text_t;
int proto_get_text(const void *payload, size_t len, proto_text_t *out);

/* Streaming: bytes come in as they arrive; whole frames come out. */
typedef struct proto_decoder {
    buf_t in;
    uint32_t max_length; /* a longer frame is an error */
} proto_decoder_t;

typedef struct proto_frame {
    uint32_t type;
    uint32_t length;
    const uint8_t *payload; /* valid until the next proto_decoder_* call */
} proto_frame_t;

void proto_decoder_init(proto_decoder_t *d, uint32_t max_length);
void proto_decoder_free(proto_decoder_t *d);
void proto_decoder_feed(proto_decoder_t *d, const void *data, size_t len);

/* 1: a frame is in *frame; 0: more bytes needed; -1: the next frame is over max_length.
 * After a 1, call proto_decoder_pop() once done with the frame. */
int proto_decoder_next(proto_decoder_t *d, proto_frame_t *frame);
void proto_decoder_pop(proto_decoder_t *d, const proto_frame_t *frame);

#endif
