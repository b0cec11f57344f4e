/* http_answer.c -- answers: written at once or queued, the access record (and metrics), error
 * answers in each contract's form, and the service paths' answers (see http_internal.h). */
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
#include "master/secret.h"
#include "proto/proto.h"

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
    default:
        return status < 300   ? "OK"
               : status < 400 ? "Redirect"
               : status < 500 ? "Client Error"
                              : "Server Error";
    }
}

static void on_write_done(uv_write_t *req, int status);

/* Takes `data` (malloc'd). Most answers fit the socket buffer: written at once with
 * uv_try_write, they need no write request -- and libuv's request would cost two
 * epoll_ctl calls (POLLOUT on, then off) per answer. What does not fit is queued. */
void conn_write(conn_t *c, char *data, size_t len)
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
        metrics_request((metrics_outcome_t)counted, status, ms / 1e3, r->queue_wait, r->body_bytes,
                        body_len);
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
    /* "access req=ID method=M path=P status=S ms=T worker=PID outcome=O", built without
     * printf: it is written for every request. */
    buf_t line = BUF_INIT;
    buf_reserve(&line, 384 + (size_t)url_len);
    buf_append_str(&line, "access req=");
    buf_append_str(&line, r->id[0] ? r->id : "-");
    buf_append_str(&line, " method=");
    buf_append_str(&line, method);
    buf_append_str(&line, " path=");
    buf_append(&line, r->url.data ? r->url.data : "", (size_t)url_len);
    buf_append_str(&line, " status=");
    buf_append_int(&line, status);
    buf_append_str(&line, " ms=");
    buf_append_fixed(&line, ms, 2);
    buf_append_str(&line, " worker=");
    if (worker_pid > 0)
        buf_append_int(&line, worker_pid);
    else
        buf_append(&line, "-", 1);
    buf_append_str(&line, " outcome=");
    buf_append_str(&line, outcome);
    log_text(LOG_INFO, line.data, line.len);
    buf_free(&line);
}

/* Status 499 is no answer sent: nginx's "client closed request", which log readers
 * know. Its queue time is the job's: until a worker took it, or until now. */
void log_client_gone(conn_t *c)
{
    const job_t *job = c->job;
    if (job != NULL && job->submitted_ns != 0) {
        uint64_t until = job->started_ns ? job->started_ns : uv_hrtime();
        c->req.queue_wait = (double)(until - job->submitted_ns) / 1e9;
    }
    log_access(c, CLIENT_GONE_STATUS, "client_gone", 0, 0);
}

/* Writes one whole answer. `close` forces Connection: close; otherwise keep-alive
 * follows the request (HTTP/1.0 without keep-alive closes) and shutdown. */
void conn_respond(conn_t *c, int status, const char *headers, size_t headers_len, const char *body,
                  size_t body_len, bool close, const char *outcome, pid_t worker_pid)
{
    if (c->closing)
        return;
    /* Half-closed with nothing more to answer: this answer is the last. */
    bool last = c->peer_closed && c->in.len == 0;
    bool keep = !close && !last && !http.draining && !http.stopping_soon &&
                http_should_keep_alive(&c->parser);
    bool no_length = status == 204 || status == 304;
    /* HEAD: the length the body would have, but no body (it would be read as the
     * start of the next answer). */
    bool no_body = no_length || c->parser.method == HTTP_HEAD;
    if (!c->req.id[0])
        reqid_generate(c->req.id);

    buf_t out = BUF_INIT;
    buf_reserve(&out, 160 + headers_len + (no_body ? 0 : body_len));
    /* Built without printf: this runs for every answer. */
    buf_append_str(&out, "HTTP/1.1 ");
    buf_append_int(&out, status);
    buf_append(&out, " ", 1);
    buf_append_str(&out, reason_phrase(status));
    buf_append(&out, "\r\n", 2);
    buf_append(&out, headers, headers_len);
    if (!no_length) {
        buf_append_str(&out, "Content-Length: ");
        buf_append_int(&out, (long long)body_len);
        buf_append(&out, "\r\n", 2);
    }
    buf_append_str(&out, "x-request-id: ");
    buf_append_str(&out, c->req.id);
    buf_append(&out, "\r\n", 2);
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
    conn_arm(c, http.config->idle_timeout);
}

/* pyrt's own answer to a request it refuses, in the contract's form. */
void conn_respond_error(conn_t *c, int status, const char *message, bool close, const char *outcome)
{
    /* Before the key is checked, v2 answers as the seed does (its 401 is the seed's). */
    contract_t form = http.config->contract == CONTRACT_V2 ? CONTRACT_SEED : http.config->contract;
    buf_t headers = BUF_INIT, body = BUF_INIT;
    error_answer_format(form, status, message, true, &headers, &body);
    conn_respond(c, status, headers.data, headers.len, body.data ? body.data : "", body.len, close,
                 outcome, 0);
    buf_free(&headers);
    buf_free(&body);
}

/* An execution request the master refuses after the key was accepted: in v2, the
 * executor's envelope, so that the message reaches what it records. */
void conn_respond_exec_error(conn_t *c, int status, const char *message)
{
    buf_t headers = BUF_INIT, body = BUF_INIT;
    error_answer_format(http.config->contract, status, message, true, &headers, &body);
    conn_respond(c, status, headers.data, headers.len, body.data ? body.data : "", body.len, false,
                 "rejected", 0);
    buf_free(&headers);
    buf_free(&body);
}

void resume_unlink(conn_t *c)
{
    if (!c->resume_queued)
        return;
    c->resume_queued = false;
    if (c->resume_prev)
        c->resume_prev->resume_next = c->resume_next;
    else
        http.resumable.head = c->resume_next;
    if (c->resume_next)
        c->resume_next->resume_prev = c->resume_prev;
    else
        http.resumable.tail = c->resume_prev;
    c->resume_prev = c->resume_next = NULL;
    http.resumable.count--;
}

void on_resume(uv_idle_t *idle)
{
    /* Those queued before this turn; one queued meanwhile waits for the next. */
    for (size_t n = http.resumable.count; n > 0 && http.resumable.head; n--) {
        conn_t *c = http.resumable.head;
        resume_unlink(c);
        conn_process_buffered(c); /* not closing: conn_close() unlinks */
    }
    if (http.resumable.head == NULL)
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
    c->resume_prev = http.resumable.tail;
    c->resume_next = NULL;
    if (http.resumable.tail)
        http.resumable.tail->resume_next = c;
    else
        http.resumable.head = c;
    http.resumable.tail = c;
    http.resumable.count++;
    (void)uv_idle_start(&http.resume_idle, on_resume); /* 0: it has a callback */
}

/* The pool's answer for the connection's job (job_answer_fn). */
void answer_job(job_t *job, const job_answer_t *a)
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

void answer_health(conn_t *c)
{
    static const char json_type[] = "Content-Type: application/json\r\n";
    static const char text_type[] = "content-type: text/plain; charset=utf-8\r\n";
    if (http.config->contract == CONTRACT_V5) {
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
void answer_timings(conn_t *c)
{
    static const char text_type[] = "content-type: text/plain; charset=utf-8\r\n";
    buf_t text = BUF_INIT;
    if (http.config->telemetry_file &&
        buf_read_file(&text, http.config->telemetry_file, 1024 * 1024) < 0)
        buf_clear(&text); /* missing: empty, as open-runtimes answers before a start */
    conn_respond(c, 200, text_type, sizeof(text_type) - 1, text.data ? text.data : "", text.len,
                 false, "health", 0);
    buf_free(&text);
}

/* GET /__ready: 200 when an execution sent now would be taken (a worker ready, and idle
 * or with room in the queue) and pyrt is not about to stop; else 503 with the reason:
 * no worker (starting, a restart storm), saturated (every worker busy and the queue
 * full), draining. Liveness (/__health) stays 200 through all of it. */
void answer_ready(conn_t *c)
{
    static const char json_type[] = "Content-Type: application/json\r\n";
    const char *why = http.stopping_soon      ? "draining: pyrt is stopping"
                      : !pool_ready()         ? pool_not_ready_reason()
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
void answer_metrics(conn_t *c)
{
    static const char type[] = "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n";
    metrics_gauges_t g = {0};
    pool_stats(&g);
    g.connections = (long)http.connection_count;
    buf_t text = BUF_INIT;
    buf_reserve(&text, 8192);
    metrics_render(&text, &g);
    conn_respond(c, 200, type, sizeof(type) - 1, text.data, text.len, false, "health", 0);
    buf_free(&text);
}
