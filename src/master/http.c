/* http.c -- what a client connection reads and what the master decides on a request: reading,
 * the request line, the parser's pauses, framing, the key, limits, the job (see http.h). */
#include "master/http.h"
#include "master/admit.h"
#include "master/http_internal.h"

#include <ctype.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "master/body.h"
#include "master/execlog.h"
#include "master/metrics.h"
#include "master/pool.h"
#include "master/reqid.h"
#include "master/reqline.h"
#include "master/secret.h"
#include "proto/proto.h"

http_t http;
static char read_chunk[READ_CHUNK];

static size_t parse_input(conn_t *c, const char *data, size_t len);

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
                           "Unauthorized. Provide correct \"x-open-runtimes-secret\" header.", true,
                           "unauthorized");
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
        conn_respond_error(c, 400, "unsupported Transfer-Encoding: only chunked is accepted", true,
                           "rejected");
        return;
    }
    if (r->kind != REQ_EXEC)
        return;
    if (http.config->contract == CONTRACT_V5) {
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
    if (has_length && p->content_length > http.config->max_body) {
        conn_respond_error(c, 413, "Request body too large", true, "rejected");
        return;
    }
    if (r->expect_continue && p->http_major == 1 && p->http_minor >= 1 && !body_buffered) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn_write(c, xstrndup(cont, sizeof(cont) - 1), sizeof(cont) - 1);
    }
    if (http.config->contract == CONTRACT_V5) {
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
    else if (http.development)
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
    admit_t admit;
    if (http.config->contract == CONTRACT_V5) {
        double timeout = 0;
        bool has_timeout =
            r->has_timeout_header && parse_timeout_header(&r->timeout_header, &timeout) == 0;
        admit_v5(http.config, has_timeout, timeout, &admit);
    } else {
        admit_json(http.config, r->check, r->body_bytes, &admit);
    }
    if (admit.status != 0) {
        conn_respond_exec_error(c, admit.status, admit.message);
        return;
    }

    job_t *job = job_new(http.loop, http.config->contract, c, answer_job, r->id, admit.timeout);
    if (http.config->contract == CONTRACT_V5)
        prepare_v5_job(c, job);
    else
        memcpy(job->target, admit.target, sizeof(job->target));
    job->body = r->body; /* moves: the job owns the bytes now */
    buf_init(&r->body);
    c->job = job;
    c->paused = true;
    c->state = CONN_AT_POOL;
    pool_submit(job);
    /* v5: the log files are made while the function runs. Not when pool_submit has
     * answered it already (its answer clears c->job). */
    if (c->job == job)
        execlog_prepare(&job->log);
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
        conn_arm(c, http.config->read_timeout);
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
        size_t n = http_parser_execute(&c->parser, &http.settings, data + used, len - used);
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
    bool want = !c->closing && !c->peer_closed && c->in.len < MAX_PENDING_INPUT;
    if (want && !c->reading) {
        conn_read_start(c);
    } else if (!want && c->reading) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp); /* always 0 */
        c->reading = false;
    }
}

void conn_process_buffered(conn_t *c)
{
    if (c->in.len > 0 && !c->paused) {
        size_t used = parse_input(c, c->in.data, c->in.len);
        buf_consume(&c->in, used);
    }
    if (c->in.len == 0 && c->in.cap > READ_CHUNK * 2)
        buf_free(&c->in);
    /* Half-closed, and what it sent is answered (or cannot become a request): done. */
    if (c->peer_closed && !c->paused && !c->closing && !c->close_after_write) {
        if (c->writes_pending > 0)
            c->close_after_write = true;
        else
            start_linger(c);
        return;
    }
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

/* Whether the client still has an answer coming: a request at the pool, pipelined
 * input parsed next turn, or an answer not yet written out. */
static bool owes_answer(const conn_t *c)
{
    return c->state == CONN_AT_POOL || c->resume_queued || c->writes_pending > 0;
}

/* EOF with an answer owed: the client may have only half-closed (shutdown(SHUT_WR)
 * after its request), and it waits for what it asked -- so the connection stays: no
 * more reading (nothing more can come), and it closes once what is owed is written
 * (conn_respond says Connection: close to the last answer; see also
 * conn_process_buffered). A client that closed outright cannot be told apart until a
 * write fails: it is answered into the void, and its access line is the execution's. */
static void half_closed(conn_t *c)
{
    c->peer_closed = true;
    if (c->reading) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp); /* always 0 */
        c->reading = false;
    }
    if (c->state != CONN_AT_POOL && !c->resume_queued)
        c->close_after_write = true; /* only the written answer is owed */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    conn_t *c = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && c->state != CONN_LINGER && owes_answer(c)) {
            half_closed(c);
            return;
        }
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

void conn_read_start(conn_t *c)
{
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        log_msg(LOG_WARN, "uv_read_start on a client: %s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    c->reading = true;
}

void http_close(void)
{
    uv_close((uv_handle_t *)&http.resume_idle, NULL);
}

void http_stopping_soon(void)
{
    http.stopping_soon = true;
}

void http_drain(void)
{
    http.draining = true;
    conn_t *next;
    for (conn_t *c = http.connections; c; c = next) {
        next = c->next;
        if (c->state == CONN_IDLE || c->state == CONN_READING)
            conn_close(c);
    }
}

void http_init(uv_loop_t *l, const serve_config_t *cfg)
{
    http.loop = l;
    http.config = cfg;
    (void)uv_idle_init(http.loop, &http.resume_idle); /* 0 on Unix: it only fills the handle */
    const char *env = getenv("OPEN_RUNTIMES_ENV");
    http.development = env && strcmp(env, "development") == 0;
    http_request_settings(&http.settings);
    /* http-parser counts the request line and the headers together; the finer limits
     * (8 KiB line, 64 KiB and 100 fields of headers) are counted in the callbacks. */
    http_parser_set_max_header_size(MAX_URL + MAX_HEADER_BYTES + 4096);
}
