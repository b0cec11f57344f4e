/* fuzz_http.c -- client bytes through reqline + http-parser, driven as http.c does: same in chunks.
 *
 * Fuzzes the master's HTTP framing: the request-line check (master/reqline.c), then
 * http-parser with http.c's settings and limits -- URL 8 KiB, head 64 KiB and 100
 * fields, the body limit, a pause after each head and each message, the CRLF after each
 * chunk's data, the body check (master/body.c) on POST bodies. http.c itself cannot be
 * linked without libuv and the pool, so its driving loop (parse_input and the parser
 * callbacks) is copied here: keep the two in step. Asserts: every pointer http-parser
 * hands out lies in the bytes it was given; it never stops without progress; the URL
 * it reports is the target reqline_valid() checked; limits hold; and the same bytes in
 * other chunks give the same requests, URLs, bodies and body verdicts (only a bad
 * chunk CRLF split across reads may go unseen, as http.c documents).
 * Input: byte 0 seeds the chunk sizes (bit 7: the v5 contract), the rest is the stream. */
#include <http_parser.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "master/body.h"
#include "master/reqline.h"

/* http.c's limits (keep in step), and a small --max-body to reach it. */
#define MAX_URL (8 * 1024)
#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_HEADER_FIELDS 100
#define MAX_BODY (16 * 1024)

enum failure { OK, FAIL_LIMIT, FAIL_LINE, FAIL_CHUNK, FAIL_PARSER, FAIL_TOO_LARGE };
enum pause { PAUSE_NONE, PAUSE_HEADERS, PAUSE_MESSAGE };

typedef struct conn {
    http_parser parser;
    bool v5;
    bool at_request_line;
    const char *base, *parse_end; /* what http_parser_execute was given */
    /* The request line as reqline_valid() saw it: its target (target_long: longer than
     * MAX_URL, which on_url must refuse). */
    char target[MAX_URL];
    size_t target_len;
    bool target_long;
    /* The request, as http.c's callbacks keep it. */
    char url[MAX_URL];
    size_t url_len, header_bytes, body_bytes;
    unsigned header_count;
    bool in_value, is_exec, bad_chunk, too_large, limit;
    const char *chunk_end;
    enum pause pause;
    body_check_t *check;
    /* What came out. */
    enum failure failed;
    bool closed;
    unsigned messages;
    uint64_t digest; /* FNV-1a over each message's URL, body and verdict */
} conn_t;

static void mix(conn_t *c, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        c->digest = (c->digest ^ b[i]) * 0x100000001b3ull;
}

static void in_bounds(conn_t *c, const char *at, size_t len, const char *what)
{
    FUZZ_CHECK(at >= c->base && len <= (size_t)(c->parse_end - at),
               "%s: %zu bytes at offset %td, outside the %td bytes given", what, len, at - c->base,
               c->parse_end - c->base);
}

static int on_message_begin(http_parser *p)
{
    conn_t *c = p->data;
    c->url_len = c->header_bytes = c->body_bytes = 0;
    c->header_count = 0;
    c->in_value = c->is_exec = false;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    in_bounds(c, at, len, "url");
    if (c->url_len + len > MAX_URL) {
        c->limit = true;
        return -1;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static int count_header_bytes(conn_t *c, size_t len)
{
    c->header_bytes += len;
    if (c->header_bytes > MAX_HEADER_BYTES) {
        c->limit = true;
        return -1;
    }
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    in_bounds(c, at, len, "header field");
    c->in_value = false;
    return count_header_bytes(c, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    in_bounds(c, at, len, "header value");
    if (!c->in_value) {
        c->in_value = true;
        if (++c->header_count > MAX_HEADER_FIELDS) {
            c->limit = true;
            return -1;
        }
    }
    return count_header_bytes(c, len);
}

static int on_headers_complete(http_parser *p)
{
    conn_t *c = p->data;
    FUZZ_CHECK(!c->target_long, "a target over %d bytes passed on_url", MAX_URL);
    FUZZ_CHECK(c->url_len == c->target_len && memcmp(c->url, c->target, c->url_len) == 0,
               "http-parser's URL (%zu bytes) is not the checked target (%zu bytes)", c->url_len,
               c->target_len);
    FUZZ_CHECK(c->header_count <= MAX_HEADER_FIELDS && c->header_bytes <= MAX_HEADER_BYTES,
               "limits passed: %u fields, %zu bytes", c->header_count, c->header_bytes);
    c->is_exec = c->v5 || p->method == HTTP_POST;
    c->pause = PAUSE_HEADERS;
    http_parser_pause(p, 1);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    in_bounds(c, at, len, "body");
    c->chunk_end = at + len;
    if (!c->is_exec)
        return 0;
    c->body_bytes += len;
    if (c->body_bytes > MAX_BODY) {
        c->too_large = true;
        return -1;
    }
    mix(c, at, len);
    if (c->check)
        body_check_feed(c->check, at, len);
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    ((conn_t *)p->data)->chunk_end = NULL;
    return 0;
}

static int on_chunk_complete(http_parser *p)
{
    conn_t *c = p->data;
    if (c->chunk_end && c->chunk_end + 2 <= c->parse_end && memcmp(c->chunk_end, "\r\n", 2) != 0) {
        c->bad_chunk = true;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn_t *c = p->data;
    c->at_request_line = true;
    c->pause = PAUSE_MESSAGE;
    http_parser_pause(p, 1);
    return 0;
}

static http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
    .on_message_complete = on_message_complete,
};

static void fail(conn_t *c, enum failure why)
{
    c->failed = why;
    c->closed = true;
}

static void after_headers(conn_t *c)
{
    http_parser *p = &c->parser;
    if (!c->is_exec)
        return;
    bool has_length = !(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX;
    if (has_length && p->content_length > MAX_BODY) {
        fail(c, FAIL_TOO_LARGE); /* 413 before the body */
        return;
    }
    if (!c->v5)
        c->check = body_check_new();
}

static void after_message(conn_t *c)
{
    c->messages++;
    mix(c, c->url, c->url_len);
    unsigned method = c->parser.method;
    mix(c, &method, sizeof(method));
    if (c->check) {
        bool has_timeout = false;
        double timeout = 0;
        const char *error = NULL;
        int rc = body_check_finish(c->check, &has_timeout, &timeout, &error);
        mix(c, &rc, sizeof(rc));
        if (rc == 0 && has_timeout)
            mix(c, &timeout, sizeof(timeout));
        body_check_free(c->check);
        c->check = NULL;
    }
    if (!http_should_keep_alive(&c->parser))
        c->closed = true; /* the answer closes the connection */
}

/* http.c's check_request_line: 1 valid, 0 more bytes needed, -1 failed. */
static int check_request_line(conn_t *c, const char *data, size_t len)
{
    size_t skip = 0;
    while (skip < len && (data[skip] == '\r' || data[skip] == '\n'))
        skip++;
    const char *nl = memchr(data + skip, '\n', len - skip);
    if (nl == NULL) {
        if (len - skip <= MAX_URL + 64)
            return 0;
        fail(c, FAIL_LIMIT);
        return -1;
    }
    size_t line = (size_t)(nl - (data + skip)) + 1;
    if (!reqline_valid(data + skip, line)) {
        fail(c, FAIL_LINE);
        return -1;
    }
    /* The target is what lies between the line's two spaces. */
    const char *sp1 = memchr(data + skip, ' ', line);
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1));
    c->target_len = (size_t)(sp2 - sp1 - 1);
    c->target_long = c->target_len > sizeof(c->target);
    if (!c->target_long)
        memcpy(c->target, sp1 + 1, c->target_len);
    c->at_request_line = false;
    return 1;
}

/* http.c's parse_input: the bytes consumed. */
static size_t parse_input(conn_t *c, const char *data, size_t len)
{
    size_t used = 0;
    while (used < len && !c->closed) {
        if (c->at_request_line && check_request_line(c, data + used, len - used) <= 0)
            break;
        c->base = data;
        c->parse_end = data + len;
        size_t n = http_parser_execute(&c->parser, &settings, data + used, len - used);
        c->chunk_end = NULL;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        FUZZ_CHECK(n <= len - used, "consumed %zu of %zu bytes", n, len - used);
        used += n;
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            enum pause why = c->pause;
            c->pause = PAUSE_NONE;
            FUZZ_CHECK(why != PAUSE_NONE, "paused by no callback");
            if (why == PAUSE_HEADERS)
                after_headers(c);
            else
                after_message(c);
            continue;
        }
        if (e != HPE_OK) {
            fail(c, c->limit                   ? FAIL_LIMIT
                    : c->too_large             ? FAIL_TOO_LARGE
                    : c->bad_chunk             ? FAIL_CHUNK
                    : e == HPE_HEADER_OVERFLOW ? FAIL_LIMIT
                                               : FAIL_PARSER);
            break;
        }
        FUZZ_CHECK(n > 0 || used == len, "http-parser stopped with no progress and no error");
    }
    return used;
}

/* One connection: the stream arrives in chunks; what the parser leaves waits in `in`. */
static void run(conn_t *c, const uint8_t *data, size_t len, bool v5, bool whole, uint32_t seed)
{
    memset(c, 0, sizeof(*c));
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->v5 = v5;
    c->at_request_line = true;
    c->digest = 0xcbf29ce484222325ull;
    fuzz_chunker_t ch;
    fuzz_chunker_init(&ch, seed);
    char *in = NULL;
    size_t in_len = 0;
    for (size_t off = 0; off < len && !c->closed;) {
        size_t n = whole ? len - off : fuzz_chunk(&ch, len - off);
        /* An exact-size buffer each time: a read past what is given is an ASan error. */
        char *buf = malloc(in_len + n);
        if (in_len)
            memcpy(buf, in, in_len);
        memcpy(buf + in_len, data + off, n);
        off += n;
        free(in);
        in = buf;
        in_len += n;
        size_t used = parse_input(c, in, in_len);
        memmove(in, in + used, in_len - used);
        in_len -= used;
    }
    free(in);
    body_check_free(c->check);
    c->check = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    http_parser_set_max_header_size(MAX_URL + MAX_HEADER_BYTES + 4096); /* as http_init() */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 1)
        return 0;
    bool v5 = data[0] & 0x80;
    uint32_t seed = data[0];
    static conn_t whole, split; /* large: not on the stack */
    run(&whole, data + 1, len - 1, v5, true, seed);
    run(&split, data + 1, len - 1, v5, false, seed);
    if (whole.failed == OK)
        FUZZ_CHECK(split.failed == OK, "whole: fine; in chunks: failure %d", split.failed);
    if (split.failed == OK)
        FUZZ_CHECK(whole.failed == OK || whole.failed == FAIL_CHUNK,
                   "in chunks: fine; whole: failure %d", whole.failed);
    if (whole.failed == OK && split.failed == OK)
        FUZZ_CHECK(whole.messages == split.messages && whole.digest == split.digest,
                   "whole: %u requests; in chunks: %u, or different URLs, bodies or verdicts",
                   whole.messages, split.messages);
    return 0;
}
