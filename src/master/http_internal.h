/* http_internal.h -- what the HTTP layer's files share: the request and connection
 * structs, the layer's one state, and the calls between them. Only these files include
 * it (see http.h for the layer's callers):
 *
 *   conn.c          a connection's life: new (accept), timers, linger, close, free
 *   http.c          reading, and the decisions on a request (framing, key, limits, the
 *                   job), and the public API
 *   http_request.c  a request as http-parser delivers it: head, headers, body
 *   http_answer.c   answers: writing, the access record, errors, the service paths */
#ifndef PYRT_HTTP_INTERNAL_H
#define PYRT_HTTP_INTERNAL_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "master/body.h"
#include "master/config.h"
#include "master/job.h"
#include "master/reqid.h"

#define MAX_URL (8 * 1024)
#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_HEADER_FIELDS 100
#define MAX_PENDING_INPUT (1024 * 1024) /* pipelined bytes kept while a request runs */
#define LINGER_MS 2000
#define READ_CHUNK (64 * 1024)
#define CLIENT_GONE_STATUS 499 /* the access line of a client gone mid-execution */

enum conn_state {
    CONN_IDLE,    /* between requests */
    CONN_READING, /* a request has begun and is not complete */
    CONN_AT_POOL, /* its execution is queued or running */
    CONN_LINGER,  /* answered with close: draining input until EOF or LINGER_MS */
};

enum req_kind { REQ_EXEC, REQ_HEALTH, REQ_READY, REQ_TIMINGS, REQ_METRICS, REQ_NOT_ALLOWED };
enum pause_reason { PAUSE_NONE, PAUSE_HEADERS, PAUSE_MESSAGE };

typedef struct request {
    buf_t url;
    buf_t field, value;
    bool in_value;
    size_t header_bytes;
    unsigned header_count;
    int limit_status; /* 414 or 431 once a limit is passed, else 0 */
    buf_t key;
    unsigned key_count;
    unsigned te_count;
    bool te_chunked_only;
    bool expect_continue, expect_other;
    char id[REQID_MAX + 1];
    bool has_client_id;
    enum req_kind kind;
    enum pause_reason pause;
    bool body_too_large;
    bool bad_chunk;
    const char *chunk_end; /* end of the last chunk's data, in the bytes being parsed */
    body_check_t *check;
    buf_t body;
    size_t body_bytes;
    uint64_t start_ns;
    double queue_wait; /* seconds its execution waited for a worker (the access record) */
    /* v5: the headers user code sees, encoded for the CALL (proto.h), and the
     * x-open-runtimes-* values the master acts on. */
    buf_t fields;
    uint32_t field_count;
    buf_t timeout_header; /* x-open-runtimes-timeout, when given */
    bool has_timeout_header;
    bool logging_disabled;
    buf_t log_id; /* x-open-runtimes-log-id, when given */
    bool has_log_id;
} request_t;

typedef struct conn conn_t;

/* One client connection. Made by conn_new() on accept, and freed by conn_free() in the
 * close callback of the last of its two handles, after conn_close(): nothing else frees
 * it. Embedded members (the handles, the parser, `req`, `in`) are its own; for each
 * pointer, who owns what it points at: */
struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    int open_handles; /* of tcp and timer: conn_free() runs when it reaches 0 */
    http_parser parser;
    buf_t in; /* received, not yet parsed (owned: freed by conn_free) */
    enum conn_state state;
    request_t req;          /* the current request (owned: request_reset frees what it holds) */
    job_t *job;             /* borrowed: the pool owns the job; conn_close() detaches it */
    bool paused;            /* the parser waits for the current answer */
    bool in_process;        /* inside parse_input(): answers must not re-enter it */
    bool resume_queued;     /* in `resumable`: its pipelined input waits for the next turn */
    bool closing;           /* conn_close() was called */
    bool close_after_write; /* the answer said Connection: close */
    bool peer_closed;       /* EOF came with an answer owed (a half-close): no more reading */
    bool reading;
    bool at_request_line; /* the next bytes start a request: check its line first */
    bool bad_request_line;
    const char *parse_end; /* borrowed: the end of the bytes being parsed (not owned) */
    int writes_pending;
    /* Links, owning nothing: `http.connections` (conn_new, conn_close) and
     * `http.resumable` (http_answer.c). */
    struct conn *prev, *next;
    struct conn *resume_prev, *resume_next;
};

/* One queued write: owns `data` (malloc'd) and itself, both freed in its callback;
 * `conn` is borrowed (the connection outlives it: its handle's close waits for it). */
typedef struct write_req {
    uv_write_t req;
    conn_t *conn;
    char *data;
} write_req_t;

/* The layer's one state (http.c owns it). */
typedef struct http {
    uv_loop_t *loop;
    const serve_config_t *config;
    http_parser_settings settings;
    conn_t *connections;
    size_t connection_count;
    bool draining;
    bool stopping_soon; /* SIGTERM came: not ready, answers close their connection */
    /* Connections answered with pipelined input buffered: it is parsed on the next loop
     * turn (resume_idle), so that a request enters the pool only from the loop -- never
     * from inside the pool, while it answers the one before (answer_job). */
    struct {
        conn_t *head, *tail;
        size_t count;
    } resumable;
    uv_idle_t resume_idle;
    bool development; /* v5: OPEN_RUNTIMES_ENV=development, log id "dev" */
} http_t;

extern http_t http;

/* ---------------------------------------------------------- http_request.c ---- */

void request_init(request_t *r);
void request_reset(request_t *r); /* frees what the request held, keeps nothing */
bool url_path_is(const buf_t *url, const char *path);
void http_request_settings(http_parser_settings *s); /* the parser's callbacks */

/* ----------------------------------------------------------- http_answer.c ---- */

/* Takes `data` (malloc'd). */
void conn_write(conn_t *c, char *data, size_t len);
/* One whole answer; `close` forces Connection: close. */
void conn_respond(conn_t *c, int status, const char *headers, size_t headers_len, const char *body,
                  size_t body_len, bool close, const char *outcome, pid_t worker_pid);
/* pyrt's own refusal of a request, in the contract's form. */
void conn_respond_error(conn_t *c, int status, const char *message, bool close,
                        const char *outcome);
/* A refusal after the key was accepted: v2's envelope. */
void conn_respond_exec_error(conn_t *c, int status, const char *message);
void resume_unlink(conn_t *c);
void answer_job(job_t *job, const job_answer_t *a); /* the pool's answer (job_answer_fn) */
/* The access record of a request whose client left while its execution was queued or
 * running (outcome client_gone, status 499): before conn_close() detaches the job. */
void log_client_gone(conn_t *c);
void on_resume(uv_idle_t *idle);
void answer_health(conn_t *c);
void answer_timings(conn_t *c);
void answer_ready(conn_t *c);
void answer_metrics(conn_t *c);

/* ------------------------------------------------------------------ conn.c ---- */

/* A connection on the accepted socket `fd` (taken: closed on failure), linked into
 * http.connections; NULL when libuv refused the socket. Freed by conn_free() once
 * conn_close() has closed its handles. */
conn_t *conn_new(int fd);
/* (Re)starts the connection's one timer: on expiry, by state, a 408 or a close. */
void conn_arm(conn_t *c, double seconds);
/* Detaches its job, unlinks it, closes its handles; the memory goes when they close. */
void conn_close(conn_t *c);
void start_linger(conn_t *c);

/* ------------------------------------------------------------------ http.c ---- */

void conn_read_start(conn_t *c);
void conn_process_buffered(conn_t *c);

#endif
