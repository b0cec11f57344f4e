/* http_request.c -- a request as http-parser delivers it: the head, headers (what the master acts
 * on, and v5's for user code), limits, the body (see http_internal.h). */
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

/* ------------------------------------------------------------- requests ---- */

void request_init(request_t *r)
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
void request_reset(request_t *r)
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
    if (http.config->contract == CONTRACT_V5) {
        const char *tv = v;
        size_t tlen = vlen;
        trim(&tv, &tlen);
        header_done_v5(r, tv, tlen);
    }
    /* In v5 the secret is x-open-runtimes-secret: x-internal-challenge is a user's. */
    if (http.config->contract != CONTRACT_V5 && header_is(&r->field, "x-internal-challenge")) {
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

bool url_path_is(const buf_t *url, const char *path)
{
    size_t n = strlen(path);
    if (url->len < n || memcmp(url->data, path, n) != 0)
        return false;
    return url->len == n || url->data[n] == '?';
}

/* GET (or HEAD) /_/health in every contract, OpenFaaS' name; GET /__health in seed and v2
 * only: under v5 that path runs the function (its own is /__opr/health). */
static bool is_health_path(const http_parser *p, const buf_t *url, bool get)
{
    if (get && url_path_is(url, "/_/health"))
        return true;
    return http.config->contract != CONTRACT_V5 && p->method == HTTP_GET &&
           url_path_is(url, "/__health");
}

static int on_headers_complete(http_parser *p)
{
    conn_t *c = p->data;
    request_t *r = &c->req;
    if (r->in_value)
        header_done(r);
    bool get = p->method == HTTP_GET || p->method == HTTP_HEAD;
    /* The orchestrators' paths, in every contract: readiness, and OpenFaaS' names. */
    if (get && !http.config->no_metrics && url_path_is(&r->url, "/__metrics"))
        r->kind = REQ_METRICS;
    else if (get && (url_path_is(&r->url, "/__ready") || url_path_is(&r->url, "/_/ready")))
        r->kind = REQ_READY;
    else if (is_health_path(p, &r->url, get))
        r->kind = REQ_HEALTH;
    else if (http.config->contract == CONTRACT_V5) {
        /* Every method on every path runs the function, but for two paths. */
        if (url_path_is(&r->url, "/__opr/health"))
            r->kind = REQ_HEALTH;
        else if (url_path_is(&r->url, "/__opr/timings"))
            r->kind = REQ_TIMINGS;
        else
            r->kind = REQ_EXEC;
    } else if (p->method == HTTP_POST)
        r->kind = REQ_EXEC;
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
    if (r->body_bytes > http.config->max_body) {
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

void http_request_settings(http_parser_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->on_message_begin = on_message_begin;
    s->on_url = on_url;
    s->on_header_field = on_header_field;
    s->on_header_value = on_header_value;
    s->on_headers_complete = on_headers_complete;
    s->on_body = on_body;
    s->on_chunk_header = on_chunk_header;
    s->on_chunk_complete = on_chunk_complete;
    s->on_message_complete = on_message_complete;
}
