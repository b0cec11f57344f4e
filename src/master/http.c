/* http.c -- the master's client connections (see http.h). */
#include "master/http.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "master/body.h"
#include "master/execlog.h"
#include "master/metrics.h"
#include "master/pool.h"
#include "master/reqline.h"
#include "master/reqid.h"
#include "master/secret.h"
#include "proto/proto.h"

#define MAX_URL (8 * 1024)
#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_HEADER_FIELDS 100
#define MAX_PENDING_INPUT (1024 * 1024) /* pipelined bytes kept while a request runs */
#define LINGER_MS 2000
#define READ_CHUNK (64 * 1024)

enum conn_state {
    CONN_IDLE,      /* between requests */
    CONN_READING,   /* a request has begun and is not complete */
    CONN_AT_POOL,   /* its execution is queued or running */
    CONN_LINGER,    /* answered with close: draining input until EOF or LINGER_MS */
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

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    int open_handles;
    http_parser parser;
    buf_t in; /* received, not yet parsed */
    enum conn_state state;
    request_t req;
    job_t *job;
    bool paused;            /* the parser waits for the current answer */
    bool in_process;        /* inside parse_input(): answers must not re-enter it */
    bool resume_queued;     /* in `resumable`: its pipelined input waits for the next turn */
    bool closing;           /* conn_close() was called */
    bool close_after_write; /* the answer said Connection: close */
    bool reading;
    bool at_request_line; /* the next bytes start a request: check its line first */
    bool bad_request_line;
    const char *parse_end; /* end of the bytes being parsed */
    int writes_pending;
    struct conn *prev, *next;               /* connections */
    struct conn *resume_prev, *resume_next; /* resumable */
};

typedef struct write_req {
    uv_write_t req;
    conn_t *conn;
    char *data;
} write_req_t;

static uv_loop_t *loop;
static const serve_config_t *config;
static http_parser_settings settings;
static conn_t *connections;
static size_t connection_count;
static bool draining;
static bool stopping_soon; /* SIGTERM came: not ready, answers close their connection */
static uv_stream_t *listener;
static bool accept_pending;
static char read_chunk[READ_CHUNK];
/* Connections answered with pipelined input buffered: it is parsed on the next loop
 * turn (resume_idle), so that a request enters the pool only from the loop -- never
 * from inside the pool, while it answers the one before (answer_job). */
static struct {
    conn_t *head, *tail;
    size_t count;
} resumable;
static uv_idle_t resume_idle;
static bool development; /* v5: OPEN_RUNTIMES_ENV=development, log id "dev" */

static void conn_close(conn_t *c);
static void read_start(conn_t *c);
static size_t parse_input(conn_t *c, const char *data, size_t len);
static void conn_process_buffered(conn_t *c);

/* ---------------------------------------------------------------- timers ---- */

static void on_timer(uv_timer_t *timer);

static void conn_arm(conn_t *c, double seconds)
{
    uint64_t ms = (uint64_t)(seconds * 1000.0 + 0.5);
    (void)uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0); /* 0: the timer is not closing */
}

/* ------------------------------------------------------------- requests ---- */

static void request_init(request_t *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->url);
    buf_init(&r->field);
    buf_init(&r->value);
    buf_init(&r->key);
    buf_init(&r->body);
    buf_init(&r->fields);
    buf_init(&r->timeout_header);
    buf_init(&r->log_id);
}

/* Ends the current request: frees what it held, keeps nothing. */
static void request_reset(request_t *r)
{
    buf_free(&r->url);
    buf_free(&r->field);
    buf_free(&r->value);
    if (r->key.data)
        memset(r->key.data, 0, r->key.cap); /* a wrong key may be someone's typo of the right one */
    buf_free(&r->key);
    buf_free(&r->body);
    buf_free(&r->fields);
    buf_free(&r->timeout_header);
    buf_free(&r->log_id);
    body_check_free(r->check);
    request_init(r);
}

static bool header_is(const buf_t *name, const char *want)
{
    return name->len == strlen(want) && strncasecmp(name->data, want, name->len) == 0;
}

static void trim(const char **s, size_t *len)
{
    while (*len && (**s == ' ' || **s == '\t'))
        (*s)++, (*len)--;
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

static bool header_has_prefix(const buf_t *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return name->len >= n && strncasecmp(name->data, prefix, n) == 0;
}

/* v5: the x-open-runtimes-* headers are the executor's, for the master alone; every
 * other line goes to user code, name lower-cased -- except an Authorization line that
 * carries the secret. */
static void header_done_v5(request_t *r, const char *v, size_t vlen)
{
    if (header_has_prefix(&r->field, "x-open-runtimes-")) {
        if (header_is(&r->field, "x-open-runtimes-secret")) {
            r->key_count++;
            buf_clear(&r->key);
            buf_append(&r->key, v, vlen);
        } else if (header_is(&r->field, "x-open-runtimes-timeout")) {
            r->has_timeout_header = true;
            buf_clear(&r->timeout_header);
            buf_append(&r->timeout_header, v, vlen);
        } else if (header_is(&r->field, "x-open-runtimes-logging")) {
            /* As the executor means it: anything but "enabled" (or nothing) disables. */
            r->logging_disabled = !(vlen == 0 || (vlen == 7 && memcmp(v, "enabled", 7) == 0));
        } else if (header_is(&r->field, "x-open-runtimes-log-id")) {
            r->has_log_id = vlen > 0; /* empty: as if absent, as open-runtimes reads it */
            buf_clear(&r->log_id);
            buf_append(&r->log_id, v, vlen);
        }
        return;
    }
    if (header_is(&r->field, "authorization") && secret_is_authorization(v, vlen))
        return;
    for (size_t i = 0; i < r->field.len; i++)
        r->field.data[i] = (char)tolower((unsigned char)r->field.data[i]);
    proto_put_bytes(&r->fields, r->field.data, r->field.len);
    proto_put_bytes(&r->fields, v, vlen);
    r->field_count++;
}

/* A header line is complete: keep what the master acts on, drop the rest. */
static void header_done(request_t *r)
{
    const char *v = r->value.data ? r->value.data : "";
    size_t vlen = r->value.len;
    if (config->contract == CONTRACT_V5) {
        const char *tv = v;
        size_t tlen = vlen;
        trim(&tv, &tlen);
        header_done_v5(r, tv, tlen);
    }
    /* In v5 the secret is x-open-runtimes-secret: x-internal-challenge is a user's. */
    if (config->contract != CONTRACT_V5 && header_is(&r->field, "x-internal-challenge")) {
        r->key_count++;
        buf_clear(&r->key);
        buf_append(&r->key, v, vlen);
    } else if (header_is(&r->field, "transfer-encoding")) {
        trim(&v, &vlen);
        r->te_count++;
        r->te_chunked_only = vlen == 7 && strncasecmp(v, "chunked", 7) == 0;
    } else if (header_is(&r->field, "expect")) {
        trim(&v, &vlen);
        if (vlen == 12 && strncasecmp(v, "100-continue", 12) == 0)
            r->expect_continue = true;
        else
            r->expect_other = true;
    } else if (header_is(&r->field, "x-request-id")) {
        trim(&v, &vlen);
        if (reqid_valid(v, vlen)) {
            memcpy(r->id, v, vlen);
            r->id[vlen] = '\0';
            r->has_client_id = true;
        }
    }
    buf_clear(&r->field);
    buf_clear(&r->value);
    r->in_value = false;
}

static int count_header_bytes(request_t *r, size_t len)
{
    r->header_bytes += len;
    if (r->header_bytes > MAX_HEADER_BYTES) {
        r->limit_status = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    conn_t *c = p->data;
    uint64_t start = c->req.start_ns; /* set with the request's first byte */
    request_reset(&c->req);
    c->req.start_ns = start ? start : uv_hrtime();
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->req.url.len + len > MAX_URL) {
        c->req.limit_status = 414;
        return -1;
    }
    buf_append(&c->req.url, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    request_t *r = &c->req;
    if (r->in_value)
        header_done(r);
    if (count_header_bytes(r, len) < 0)
        return -1;
    buf_append(&r->field, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    request_t *r = &c->req;
    if (!r->in_value) {
        r->in_value = true;
        if (++r->header_count > MAX_HEADER_FIELDS) {
            r->limit_status = 431;
            return -1;
        }
    }
    if (count_header_bytes(r, len) < 0)
        return -1;
    buf_append(&r->value, at, len);
    return 0;
}

static bool url_path_is(const buf_t *url, const char *path)
{
    size_t n = strlen(path);
    if (url->len < n || memcmp(url->data, path, n) != 0)
        return false;
    return url->len == n || url->data[n] == '?';
}

static int on_headers_complete(http_parser *p)
{
    conn_t *c = p->data;
    request_t *r = &c->req;
    if (r->in_value)
        header_done(r);
    bool get = p->method == HTTP_GET || p->method == HTTP_HEAD;
    /* The orchestrators' paths, in every contract: readiness, and OpenFaaS' names. */
    if (get && !config->no_metrics && url_path_is(&r->url, "/__metrics"))
        r->kind = REQ_METRICS;
    else if (get && (url_path_is(&r->url, "/__ready") || url_path_is(&r->url, "/_/ready")))
        r->kind = REQ_READY;
    else if (get && url_path_is(&r->url, "/_/health"))
        r->kind = REQ_HEALTH;
    else if (config->contract == CONTRACT_V5) {
        /* Every method on every path runs the function, but for two paths. */
        if (url_path_is(&r->url, "/__opr/health"))
            r->kind = REQ_HEALTH;
        else if (url_path_is(&r->url, "/__opr/timings"))
            r->kind = REQ_TIMINGS;
        else
            r->kind = REQ_EXEC;
    } else if (p->method == HTTP_POST)
        r->kind = REQ_EXEC;
    else if (p->method == HTTP_GET && url_path_is(&r->url, "/__health"))
        r->kind = REQ_HEALTH;
    else
        r->kind = REQ_NOT_ALLOWED;
    /* Stop here so that parse_input() decides key, length and 100-continue knowing
     * whether body bytes are already buffered. */
    r->pause = PAUSE_HEADERS;
    http_parser_pause(p, 1);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    request_t *r = &c->req;
    r->chunk_end = at + len;
    if (r->kind != REQ_EXEC)
        return 0; /* a body on GET or others is read and dropped */
    r->body_bytes += len;
    if (r->body_bytes > config->max_body) {
        r->body_too_large = true;
        return -1;
    }
    buf_append(&r->body, at, len);
    if (r->check)
        body_check_feed(r->check, at, len); /* v5 bodies are bytes: not checked */
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    conn_t *c = p->data;
    c->req.chunk_end = NULL;
    return 0;
}

/* The non-strict parser takes any two bytes after a chunk's data for its CRLF; check
 * them when they are in the bytes at hand (a CRLF split across reads is not). */
static int on_chunk_complete(http_parser *p)
{
    conn_t *c = p->data;
    request_t *r = &c->req;
    if (r->chunk_end && r->chunk_end + 2 <= c->parse_end && memcmp(r->chunk_end, "\r\n", 2) != 0) {
        r->bad_chunk = true;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn_t *c = p->data;
    c->at_request_line = true;
    c->req.pause = PAUSE_MESSAGE;
    http_parser_pause(p, 1);
    return 0;
}

/* -------------------------------------------------------------- answers ---- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error"
                                                                              : "Server Error";
    }
}

static void on_write_done(uv_write_t *req, int status);

/* Takes `data` (malloc'd). Most answers fit the socket buffer: written at once with
 * uv_try_write, they need no write request -- and libuv's request would cost two
 * epoll_ctl calls (POLLOUT on, then off) per answer. What does not fit is queued. */
static void conn_write(conn_t *c, char *data, size_t len)
{
    size_t done = 0;
    int rc;
    if (c->writes_pending == 0) {
        uv_buf_t now = uv_buf_init(data, (unsigned int)len);
        rc = uv_try_write((uv_stream_t *)&c->tcp, &now, 1);
        if (rc < 0 && rc != UV_EAGAIN)
            goto fail;
        done = rc > 0 ? (size_t)rc : 0;
        if (done == len) {
            free(data);
            return;
        }
    }
    write_req_t *w = xmalloc(sizeof(*w));
    w->conn = c;
    w->data = data;
    uv_buf_t b = uv_buf_init(data + done, (unsigned int)(len - done));
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
    if (rc != 0) {
        free(w);
        goto fail;
    }
    c->writes_pending++;
    return;
fail:
    free(data);
    log_msg(LOG_DEBUG, "write to client failed: %s", uv_strerror(rc));
    conn_close(c);
}

static void start_linger(conn_t *c);

static void on_write_done(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    conn_t *c = w->conn;
    free(w->data);
    free(w);
    c->writes_pending--;
    if (status != 0 && !c->closing) {
        conn_close(c);
        return;
    }
    if (c->close_after_write && c->writes_pending == 0 && !c->closing)
        start_linger(c);
}

static double ms_since(uint64_t start_ns)
{
    return start_ns ? (double)(uv_hrtime() - start_ns) / 1e6 : 0.0;
}

/* Every answered request: counted (metrics.h), and one access record -- the text line
 * as it always was, or a JSON record with more in it. */
static void log_access(conn_t *c, int status, const char *outcome, pid_t worker_pid,
                       size_t body_len)
{
    const request_t *r = &c->req;
    double ms = ms_since(r->start_ns);
    int counted = metrics_outcome_of(outcome, status);
    if (counted >= 0)
        metrics_request((metrics_outcome_t)counted, status, ms / 1e3, r->queue_wait,
                        r->body_bytes, body_len);
    if (LOG_INFO < log_min_level)
        return;
    const char *method = http_method_str((enum http_method)c->parser.method);
    int url_len = (int)(r->url.len > 256 ? 256 : r->url.len);
    if (log_is_json()) {
        log_field_t fields[] = {
            LOG_FIELD_STR("request_id", r->id[0] ? r->id : "-"),
            LOG_FIELD_STR("method", method),
            {"path", r->url.data ? r->url.data : "", (size_t)url_len, 0, 0, false},
            LOG_FIELD_INT("status", status),
            LOG_FIELD_STR("outcome", outcome),
            LOG_FIELD_REAL("duration_ms", ms),
            LOG_FIELD_REAL("queue_ms", r->queue_wait * 1e3),
            LOG_FIELD_INT("bytes_in", r->body_bytes),
            LOG_FIELD_INT("bytes_out", body_len),
            LOG_FIELD_INT("worker_pid", worker_pid > 0 ? worker_pid : 0),
        };
        log_event(LOG_INFO, "access", fields, sizeof(fields) / sizeof(fields[0]));
        return;
    }
    char worker[24];
    if (worker_pid > 0)
        snprintf(worker, sizeof(worker), "%d", (int)worker_pid);
    else
        snprintf(worker, sizeof(worker), "-");
    log_write(LOG_INFO, "access req=%s method=%s path=%.*s status=%d ms=%.2f worker=%s outcome=%s",
              r->id[0] ? r->id : "-", method, url_len, r->url.data ? r->url.data : "", status,
              ms, worker, outcome);
}

/* Writes one whole answer. `close` forces Connection: close; otherwise keep-alive
 * follows the request (HTTP/1.0 without keep-alive closes) and shutdown. */
static void conn_respond(conn_t *c, int status, const char *headers, size_t headers_len,
                         const char *body, size_t body_len, bool close, const char *outcome,
                         pid_t worker_pid)
{
    if (c->closing)
        return;
    bool keep = !close && !draining && !stopping_soon && http_should_keep_alive(&c->parser);
    bool no_length = status == 204 || status == 304;
    /* HEAD: the length the body would have, but no body (it would be read as the
     * start of the next answer). */
    bool no_body = no_length || c->parser.method == HTTP_HEAD;
    if (!c->req.id[0])
        reqid_generate(c->req.id);

    buf_t out = BUF_INIT;
    buf_reserve(&out, 160 + headers_len + (no_body ? 0 : body_len));
    buf_appendf(&out, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    buf_append(&out, headers, headers_len);
    if (!no_length)
        buf_appendf(&out, "Content-Length: %zu\r\n", body_len);
    buf_appendf(&out, "x-request-id: %s\r\n", c->req.id);
    if (!keep)
        buf_append_str(&out, "Connection: close\r\n");
    else if (c->parser.http_major == 1 && c->parser.http_minor == 0)
        buf_append_str(&out, "Connection: keep-alive\r\n");
    buf_append(&out, "\r\n", 2);
    if (!no_body)
        buf_append(&out, body, body_len);

    log_access(c, status, outcome, worker_pid, body_len);
    size_t len = out.len;
    conn_write(c, buf_steal(&out), len);
    if (c->closing)
        return;

    request_reset(&c->req);
    c->job = NULL;
    c->paused = false;
    if (!keep) {
        c->close_after_write = true;
        (void)uv_timer_stop(&c->timer); /* always 0 */
        if (c->writes_pending == 0)
            start_linger(c); /* written at once: no write callback will come */
        return;
    }
    c->state = CONN_IDLE;
    conn_arm(c, config->idle_timeout);
}

/* pyrt's own answer to a request it refuses, in the contract's form. */
static void conn_respond_error(conn_t *c, int status, const char *message, bool close,
                               const char *outcome)
{
    /* Before the key is checked, v2 answers as the seed does (its 401 is the seed's). */
    contract_t form = config->contract == CONTRACT_V2 ? CONTRACT_SEED : config->contract;
    buf_t headers = BUF_INIT, body = BUF_INIT;
    error_answer_format(form, status, message, true, &headers, &body);
    conn_respond(c, status, headers.data, headers.len, body.data ? body.data : "", body.len,
                 close, outcome, 0);
    buf_free(&headers);
    buf_free(&body);
}

/* An execution request the master refuses after the key was accepted: in v2, the
 * executor's envelope, so that the message reaches what it records. */
static void conn_respond_exec_error(conn_t *c, int status, const char *message)
{
    buf_t headers = BUF_INIT, body = BUF_INIT;
    error_answer_format(config->contract, status, message, true, &headers, &body);
    conn_respond(c, status, headers.data, headers.len, body.data ? body.data : "", body.len,
                 false, "rejected", 0);
    buf_free(&headers);
    buf_free(&body);
}

static void resume_unlink(conn_t *c)
{
    if (!c->resume_queued)
        return;
    c->resume_queued = false;
    if (c->resume_prev)
        c->resume_prev->resume_next = c->resume_next;
    else
        resumable.head = c->resume_next;
    if (c->resume_next)
        c->resume_next->resume_prev = c->resume_prev;
    else
        resumable.tail = c->resume_prev;
    c->resume_prev = c->resume_next = NULL;
    resumable.count--;
}

static void on_resume(uv_idle_t *idle)
{
    /* Those queued before this turn; one queued meanwhile waits for the next. */
    for (size_t n = resumable.count; n > 0 && resumable.head; n--) {
        conn_t *c = resumable.head;
        resume_unlink(c);
        conn_process_buffered(c); /* not closing: conn_close() unlinks */
    }
    if (resumable.head == NULL)
        (void)uv_idle_stop(idle); /* always 0 */
}

/* The connection's answer is written: what it buffered behind the request is parsed on
 * the next loop turn. With nothing buffered, reading resumes now. */
static void conn_resume_later(conn_t *c)
{
    if (c->in.len == 0) {
        conn_process_buffered(c); /* parses nothing: cannot reach the pool */
        return;
    }
    if (c->resume_queued)
        return;
    c->resume_queued = true;
    c->resume_prev = resumable.tail;
    c->resume_next = NULL;
    if (resumable.tail)
        resumable.tail->resume_next = c;
    else
        resumable.head = c;
    resumable.tail = c;
    resumable.count++;
    (void)uv_idle_start(&resume_idle, on_resume); /* 0: it has a callback */
}

/* The pool's answer for the connection's job (job_answer_fn). */
static void answer_job(job_t *job, const job_answer_t *a)
{
    conn_t *c = job->client;
    c->job = NULL;
    job->client = NULL;
    c->req.queue_wait = a->queue_wait;
    conn_respond(c, a->status, a->headers, a->headers_len, a->body, a->body_len, false, a->outcome,
                 a->worker_pid);
    /* Later pipelined requests waited for this answer. Inside parse_input() (the pool
     * answered at once, from pool_submit), the parser goes on by itself. */
    if (!c->closing && !c->in_process)
        conn_resume_later(c);
}

/* ------------------------------------------------------------- decisions ---- */

/* x-open-runtimes-timeout: digits only, > 0. 0 and the seconds, or -1. */
static int parse_timeout_header(const buf_t *v, double *seconds)
{
    double t = 0;
    if (v->len == 0)
        return -1;
    for (size_t i = 0; i < v->len; i++) {
        if (v->data[i] < '0' || v->data[i] > '9')
            return -1;
        if (t < 1e12)
            t = t * 10 + (v->data[i] - '0'); /* past 1e12 it is capped anyway */
    }
    if (t <= 0)
        return -1;
    *seconds = t;
    return 0;
}

/* v5: the secret (unless disabled), the timeout header and the log id, in that order,
 * before the body is read. 0, or -1 once the refusal is written. The answers are the
 * ones open-runtimes gives; a log id names files, so a bad one is refused outright. */
static int check_v5_head(conn_t *c)
{
    request_t *r = &c->req;
    if (!secret_disabled() &&
        !(r->key_count == 1 && secret_matches(r->key.data ? r->key.data : "", r->key.len))) {
        conn_respond_error(c, 500,
                           "Unauthorized. Provide correct \"x-open-runtimes-secret\" header.",
                           true, "unauthorized");
        return -1;
    }
    double unused;
    if (r->has_timeout_header && parse_timeout_header(&r->timeout_header, &unused) < 0) {
        conn_respond_error(c, 500,
                           "Header \"x-open-runtimes-timeout\" must be an integer greater than 0.",
                           true, "rejected");
        return -1;
    }
    if (r->has_log_id && !r->logging_disabled &&
        !execlog_id_valid(r->log_id.data ? r->log_id.data : "", r->log_id.len)) {
        conn_respond_error(c, 400,
                           "Header \"x-open-runtimes-log-id\" must be 1-128 characters of "
                           "A-Za-z0-9._- (and not . or ..).",
                           true, "rejected");
        return -1;
    }
    return 0;
}

/* The head is complete and the parser is paused before the body. */
static void after_headers(conn_t *c, bool body_buffered)
{
    request_t *r = &c->req;
    http_parser *p = &c->parser;

    /* Framing first, before the key: http-parser passes "gzip, chunked" and would
     * hand us coded bytes. */
    if (r->te_count > 0 && (r->te_count > 1 || !r->te_chunked_only)) {
        conn_respond_error(c, 400, "unsupported Transfer-Encoding: only chunked is accepted",
                           true, "rejected");
        return;
    }
    if (r->kind != REQ_EXEC)
        return;
    if (config->contract == CONTRACT_V5) {
        if (check_v5_head(c) < 0)
            return;
    } else {
        bool key_ok =
            r->key_count == 1 && secret_matches(r->key.data ? r->key.data : "", r->key.len);
        if (!key_ok) {
            conn_respond_error(c, 401, "Unauthorized", true, "unauthorized");
            return;
        }
    }
    if (r->expect_other) {
        conn_respond_error(c, 417, "only Expect: 100-continue is supported", true, "rejected");
        return;
    }
    bool has_length = !(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX;
    if (has_length && p->content_length > config->max_body) {
        conn_respond_error(c, 413, "Request body too large", true, "rejected");
        return;
    }
    if (r->expect_continue && p->http_major == 1 && p->http_minor >= 1 && !body_buffered) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn_write(c, xstrndup(cont, sizeof(cont) - 1), sizeof(cont) - 1);
    }
    if (config->contract == CONTRACT_V5) {
        if (has_length)
            buf_reserve(&r->body, (size_t)p->content_length);
        return; /* bytes of any type: nothing to check as they come */
    }
    r->check = body_check_new();
    if (r->check == NULL) {
        conn_respond_error(c, 500, "out of memory for the JSON parser", true, "error");
        return;
    }
    if (has_length)
        buf_reserve(&r->body, (size_t)p->content_length);
}

static void answer_health(conn_t *c)
{
    static const char json_type[] = "Content-Type: application/json\r\n";
    static const char text_type[] = "content-type: text/plain; charset=utf-8\r\n";
    if (config->contract == CONTRACT_V5) {
        /* open-runtimes' own answer, once a worker can take an execution. */
        if (pool_ready())
            conn_respond(c, 200, text_type, sizeof(text_type) - 1, "OK", 2, false, "health", 0);
        else
            conn_respond_error(c, 503, pool_not_ready_reason(), false, "health");
        return;
    }
    if (pool_ready()) {
        static const char ok[] = "{\"status\": \"ok\"}";
        conn_respond(c, 200, json_type, sizeof(json_type) - 1, ok, sizeof(ok) - 1, false, "health",
                     0);
    } else {
        const char *why = pool_not_ready_reason();
        buf_t body = BUF_INIT;
        buf_append_str(&body, "{\"status\": \"unavailable\", \"message\": ");
        json_append_string(&body, why, strlen(why));
        buf_append_str(&body, ", \"code\": 503}");
        conn_respond(c, 503, json_type, sizeof(json_type) - 1, body.data, body.len, false, "health",
                     0);
        buf_free(&body);
    }
}

/* v5 GET /__opr/timings: the start-up timings the image's scripts wrote, as they are. */
static void answer_timings(conn_t *c)
{
    static const char text_type[] = "content-type: text/plain; charset=utf-8\r\n";
    buf_t text = BUF_INIT;
    if (config->telemetry_file && buf_read_file(&text, config->telemetry_file, 1024 * 1024) < 0)
        buf_clear(&text); /* missing: empty, as open-runtimes answers before a start */
    conn_respond(c, 200, text_type, sizeof(text_type) - 1, text.data ? text.data : "", text.len,
                 false, "health", 0);
    buf_free(&text);
}

/* GET /__ready: 200 when an execution sent now would be taken (a worker ready, and idle
 * or with room in the queue) and pyrt is not about to stop; else 503 with the reason:
 * no worker (starting, a restart storm), saturated (every worker busy and the queue
 * full), draining. Liveness (/__health) stays 200 through all of it. */
static void answer_ready(conn_t *c)
{
    static const char json_type[] = "Content-Type: application/json\r\n";
    const char *why = stopping_soon ? "draining: pyrt is stopping"
                      : !pool_ready() ? pool_not_ready_reason()
                      : !pool_can_take_work() ? "every worker is busy and the queue is full"
                                              : NULL;
    if (why == NULL) {
        static const char ok[] = "{\"status\": \"ready\"}";
        conn_respond(c, 200, json_type, sizeof(json_type) - 1, ok, sizeof(ok) - 1, false, "health",
                     0);
        return;
    }
    buf_t body = BUF_INIT;
    buf_append_str(&body, "{\"status\": \"unavailable\", \"message\": ");
    json_append_string(&body, why, strlen(why));
    buf_append_str(&body, ", \"code\": 503}");
    conn_respond(c, 503, json_type, sizeof(json_type) - 1, body.data, body.len, false, "health", 0);
    buf_free(&body);
}

/* GET /__metrics: the exposition, gauges read now. No key: it holds nothing a client
 * sent, only counts (no label carries a path or an id). */
static void answer_metrics(conn_t *c)
{
    static const char type[] = "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n";
    metrics_gauges_t g = {0};
    pool_stats(&g);
    g.connections = (long)connection_count;
    buf_t text = BUF_INIT;
    buf_reserve(&text, 8192);
    metrics_render(&text, &g);
    conn_respond(c, 200, type, sizeof(type) - 1, text.data, text.len, false, "health", 0);
    buf_free(&text);
}

/* v5: the job's request head for the worker (proto.h, PROTO_CALL_HTTP) and its log. */
static void prepare_v5_job(conn_t *c, job_t *job)
{
    request_t *r = &c->req;
    const char *method = http_method_str((enum http_method)c->parser.method);
    proto_put_http_head(&job->head, method, strlen(method), r->url.data ? r->url.data : "",
                        r->url.len, r->field_count, &r->fields);
    char id[EXECLOG_ID_MAX + 1] = "";
    if (r->logging_disabled)
        id[0] = '\0';
    else if (r->has_log_id)
        snprintf(id, sizeof(id), "%.*s", (int)r->log_id.len, r->log_id.data);
    else if (development)
        snprintf(id, sizeof(id), "dev");
    else
        execlog_generate_id(id);
    execlog_begin(&job->log, id);
}

/* The request is complete and the parser is paused after it. */
static void after_message(conn_t *c)
{
    request_t *r = &c->req;
    (void)uv_timer_stop(&c->timer); /* always 0 */
    if (!r->id[0])
        reqid_generate(r->id);

    if (r->kind == REQ_HEALTH) {
        answer_health(c);
        return;
    }
    if (r->kind == REQ_READY) {
        answer_ready(c);
        return;
    }
    if (r->kind == REQ_TIMINGS) {
        answer_timings(c);
        return;
    }
    if (r->kind == REQ_METRICS) {
        answer_metrics(c);
        return;
    }
    if (r->kind == REQ_NOT_ALLOWED) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "method %s is not allowed here: POST executes the function, GET /__health "
                 "reports health",
                 http_method_str((enum http_method)c->parser.method));
        conn_respond_error(c, 405, msg, false, "rejected");
        return;
    }
    bool has_timeout = false;
    double timeout = 0;
    if (config->contract == CONTRACT_V5) {
        has_timeout = r->has_timeout_header &&
                      parse_timeout_header(&r->timeout_header, &timeout) == 0;
    } else {
        if (r->body_bytes == 0) {
            conn_respond_exec_error(c, 500, "no data received");
            return;
        }
        const char *error = NULL;
        if (body_check_finish(r->check, &has_timeout, &timeout, &error) < 0) {
            conn_respond_exec_error(c, 400, error);
            return;
        }
        if (config->contract == CONTRACT_V2)
            has_timeout = false; /* v2 bodies carry no timeout: the executor keeps time */
    }
    timeout = job_timeout(has_timeout, timeout, config);

    job_t *job = job_new(loop, config->contract, c, answer_job, r->id, timeout);
    if (config->contract == CONTRACT_V5)
        prepare_v5_job(c, job);
    else
        body_check_target(r->check, job->target, sizeof(job->target));
    job->body = r->body; /* moves: the job owns the bytes now */
    buf_init(&r->body);
    c->job = job;
    c->paused = true;
    c->state = CONN_AT_POOL;
    pool_submit(job);
}

static void fail_request(conn_t *c, enum http_errno e)
{
    request_t *r = &c->req;
    if (r->limit_status == 414) {
        conn_respond_error(c, 414, "request line too long (limit 8 KiB)", true, "rejected");
    } else if (r->limit_status == 431 || e == HPE_HEADER_OVERFLOW) {
        conn_respond_error(c, 431, "request header section too large (limits: 64 KiB, 100 fields)",
                           true, "rejected");
    } else if (r->body_too_large) {
        conn_respond_error(c, 413, "Request body too large", true, "rejected");
    } else if (c->bad_request_line) {
        conn_respond_error(c, 400, "malformed HTTP request line", true, "rejected");
    } else if (r->bad_chunk) {
        conn_respond_error(c, 400, "malformed HTTP request: a chunk's data is not followed by CRLF",
                           true, "rejected");
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "malformed HTTP request: %s", http_errno_description(e));
        conn_respond_error(c, 400, msg, true, "rejected");
    }
}

/* At the start of a request: 1 when its line is complete and valid, 0 when more bytes
 * are needed, -1 when it is malformed or too long (the answer is written). */
static int check_request_line(conn_t *c, const char *data, size_t len)
{
    if (c->state == CONN_IDLE) {
        /* The request's first byte: its head and body must arrive within
         * --read-timeout of now, however slowly they trickle in. */
        c->state = CONN_READING;
        c->req.start_ns = uv_hrtime();
        conn_arm(c, config->read_timeout);
    }
    size_t skip = 0;
    while (skip < len && (data[skip] == '\r' || data[skip] == '\n'))
        skip++; /* empty lines before a request are allowed */
    const char *nl = memchr(data + skip, '\n', len - skip);
    if (nl == NULL) {
        if (len - skip <= MAX_URL + 64)
            return 0;
        c->req.limit_status = 414;
        fail_request(c, HPE_OK);
        return -1;
    }
    if (!reqline_valid(data + skip, (size_t)(nl - (data + skip)) + 1)) {
        c->bad_request_line = true;
        fail_request(c, HPE_OK);
        return -1;
    }
    c->at_request_line = false;
    return 1;
}

/* Runs the parser over data until it is consumed, the connection pauses for an
 * answer, or it closes. Returns the bytes consumed. */
static size_t parse_input(conn_t *c, const char *data, size_t len)
{
    size_t used = 0;
    c->in_process = true;
    while (used < len && !c->paused && !c->closing && !c->close_after_write) {
        if (c->at_request_line && check_request_line(c, data + used, len - used) <= 0)
            break;
        c->parse_end = data + len;
        size_t n = http_parser_execute(&c->parser, &settings, data + used, len - used);
        c->req.chunk_end = NULL;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        used += n;
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            enum pause_reason why = c->req.pause;
            c->req.pause = PAUSE_NONE;
            if (why == PAUSE_HEADERS)
                after_headers(c, len - used > 1); /* the head's last LF is not consumed yet */
            else
                after_message(c);
            continue;
        }
        if (e != HPE_OK) {
            fail_request(c, e);
            break;
        }
    }
    c->in_process = false;
    return used;
}

static void update_reading(conn_t *c)
{
    bool want = !c->closing && c->in.len < MAX_PENDING_INPUT;
    if (want && !c->reading) {
        read_start(c);
    } else if (!want && c->reading) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp); /* always 0 */
        c->reading = false;
    }
}

static void conn_process_buffered(conn_t *c)
{
    if (c->in.len > 0 && !c->paused) {
        size_t used = parse_input(c, c->in.data, c->in.len);
        buf_consume(&c->in, used);
    }
    if (c->in.len == 0 && c->in.cap > READ_CHUNK * 2)
        buf_free(&c->in);
    update_reading(c);
}

/* ---------------------------------------------------------- connections ---- */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *b)
{
    (void)handle;
    (void)suggested;
    /* One loop thread, one read at a time: reads land in a shared chunk and are parsed
     * straight from it; only what the parser leaves behind is copied. */
    *b = uv_buf_init(read_chunk, sizeof(read_chunk));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    conn_t *c = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            log_msg(LOG_DEBUG, "read from client: %s", uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    if (c->state == CONN_LINGER)
        return; /* answered with close: input is dropped */
    size_t len = (size_t)nread;
    if (c->in.len == 0 && !c->paused) {
        size_t used = parse_input(c, b->base, len);
        if (used < len && !c->closing && !c->close_after_write)
            buf_append(&c->in, b->base + used, len - used);
    } else if (!c->close_after_write) {
        buf_append(&c->in, b->base, len);
        conn_process_buffered(c);
        return;
    }
    update_reading(c);
}

static void read_start(conn_t *c)
{
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        log_msg(LOG_WARN, "uv_read_start on a client: %s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    c->reading = true;
}

static void on_handle_closed(uv_handle_t *handle)
{
    conn_t *c = handle->data;
    if (--c->open_handles > 0)
        return;
    request_reset(&c->req);
    buf_free(&c->in);
    free(c);
}

static void accept_one(uv_stream_t *server);

static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->job) {
        pool_job_detach(c->job);
        c->job = NULL;
    }
    resume_unlink(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        connections = c->next;
    if (c->next)
        c->next->prev = c->prev;
    connection_count--;
    (void)uv_timer_stop(&c->timer); /* always 0 */
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    if (accept_pending && listener != NULL) {
        accept_pending = false;
        accept_one(listener);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    free(req);
}

/* After an answer with Connection: close: send FIN, keep reading (and dropping) until
 * the client closes or LINGER_MS pass. Closing at once could make the kernel answer
 * unread input with RST, destroying the answer before the client reads it. */
static void start_linger(conn_t *c)
{
    c->state = CONN_LINGER;
    buf_free(&c->in);
    uv_shutdown_t *req = xmalloc(sizeof(*req));
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(c);
        return;
    }
    if (!c->reading)
        read_start(c);
    (void)uv_timer_start(&c->timer, on_timer, LINGER_MS, 0); /* 0: the timer is not closing */
}

static void on_timer(uv_timer_t *timer)
{
    conn_t *c = timer->data;
    switch (c->state) {
    case CONN_READING:
        conn_respond_error(c, 408, "request not received in time (read timeout)", true,
                           "rejected");
        break;
    case CONN_IDLE:
    case CONN_LINGER:
        conn_close(c);
        break;
    case CONN_AT_POOL:
        break; /* the job's own deadline applies */
    }
}

static void accept_one(uv_stream_t *server)
{
    conn_t *c = xcalloc(1, sizeof(*c));
    (void)uv_tcp_init(loop, &c->tcp); /* 0: with no address family, no socket is made yet */
    c->tcp.data = c;
    c->open_handles = 1;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    (void)uv_timer_init(loop, &c->timer); /* 0 on Unix: it only fills the handle */
    c->timer.data = c;
    c->open_handles = 2;
    (void)uv_tcp_nodelay(&c->tcp, 1); /* latency only: answers go without it too */
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->at_request_line = true;
    request_init(&c->req);
    buf_init(&c->in);
    c->state = CONN_IDLE;
    c->next = connections;
    if (connections)
        connections->prev = c;
    connections = c;
    connection_count++;
    conn_arm(c, config->idle_timeout);
    read_start(c);
}

void http_on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        log_msg(LOG_WARN, "accept: %s", uv_strerror(status));
        return;
    }
    listener = server;
    /* At the limit, leave the connection in the listen backlog: libuv stops polling the
     * listener until uv_accept() is called, which conn_close() does. */
    if (connection_count >= (size_t)config->max_connections) {
        accept_pending = true;
        return;
    }
    accept_one(server);
}

void http_close(void)
{
    uv_close((uv_handle_t *)&resume_idle, NULL);
}

void http_stopping_soon(void)
{
    stopping_soon = true;
}

void http_drain(void)
{
    draining = true;
    listener = NULL;
    accept_pending = false;
    conn_t *next;
    for (conn_t *c = connections; c; c = next) {
        next = c->next;
        if (c->state == CONN_IDLE || c->state == CONN_READING)
            conn_close(c);
    }
}

void http_init(uv_loop_t *l, const serve_config_t *cfg)
{
    loop = l;
    config = cfg;
    (void)uv_idle_init(loop, &resume_idle); /* 0 on Unix: it only fills the handle */
    const char *env = getenv("OPEN_RUNTIMES_ENV");
    development = env && strcmp(env, "development") == 0;
    memset(&settings, 0, sizeof(settings));
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_chunk_header = on_chunk_header;
    settings.on_chunk_complete = on_chunk_complete;
    settings.on_message_complete = on_message_complete;
    /* http-parser counts the request line and the headers together; the finer limits
     * (8 KiB line, 64 KiB and 100 fields of headers) are counted in the callbacks. */
    http_parser_set_max_header_size(MAX_URL + MAX_HEADER_BYTES + 4096);
}
