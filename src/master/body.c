/* body.c -- streaming check of an execution body with yajl (see body.h). */
#include "master/body.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "common/xalloc.h"

enum timeout_state { TIMEOUT_ABSENT, TIMEOUT_VALID, TIMEOUT_INVALID };

/* Strings up to this long reach yajl as they are; longer ones as a stand-in (below). */
#define STRING_PASS_MAX 256

struct body_check {
    yajl_handle h;
    /* The string scanner in front of yajl. */
    bool in_string;
    bool escape;       /* the last byte was a backslash */
    unsigned hex_left; /* hex digits still due after \u */
    size_t string_len; /* raw bytes of the current string so far */
    char string_head[STRING_PASS_MAX];
    size_t depth;
    bool key_is_timeout;  /* the last key at depth 1 was "timeout" */
    int key_target;       /* the last key at depth 1: 1 "path", 2 "file", else 0 */
    bool string_was_long; /* the string yajl sees now is a stand-in */
    char target[2][STRING_PASS_MAX + 1];
    bool target_known[2];
    bool not_object;
    bool failed;
    enum timeout_state timeout_state;
    double timeout;
    char error[256];
};

/* Every value passes here before its type-specific handling. Returns 0 to stop. */
static int on_value(body_check_t *bc, bool starts_map)
{
    if (bc->depth == 0 && !starts_map) {
        bc->not_object = true;
        return 0;
    }
    if (bc->depth == 1 && bc->key_is_timeout) {
        bc->key_is_timeout = false;
        bc->timeout_state = TIMEOUT_INVALID; /* unless on_number says otherwise */
    }
    if (bc->depth == 1 && bc->key_target) {
        bc->target_known[bc->key_target - 1] = false; /* not a short string: unknown */
        bc->key_target = 0;
    }
    return 1;
}

static int on_null(void *ctx)
{
    return on_value(ctx, false);
}

static int on_boolean(void *ctx, int v)
{
    (void)v;
    return on_value(ctx, false);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    body_check_t *bc = ctx;
    int which = bc->depth == 1 ? bc->key_target : 0;
    if (!on_value(bc, false))
        return 0;
    if (which && !bc->string_was_long && len <= STRING_PASS_MAX) {
        memcpy(bc->target[which - 1], s, len);
        bc->target[which - 1][len] = '\0';
        bc->target_known[which - 1] = true;
    }
    return 1;
}

/* yajl's raw number callback: its integer and double callbacks reject valid JSON such as
 * 1e400 or a 30-digit integer, so numbers are taken as text and only "timeout" is read. */
static int on_number(void *ctx, const char *text, size_t len)
{
    body_check_t *bc = ctx;
    bool is_timeout = bc->depth == 1 && bc->key_is_timeout;
    if (!on_value(bc, false))
        return 0;
    if (!is_timeout)
        return 1;
    char tmp[64];
    if (len >= sizeof(tmp)) {
        /* A long literal: only its magnitude matters; strtod needs a terminated copy. */
        char *copy = xstrndup(text, len);
        errno = 0;
        bc->timeout = strtod(copy, NULL);
        free(copy);
    } else {
        memcpy(tmp, text, len);
        tmp[len] = '\0';
        errno = 0;
        bc->timeout = strtod(tmp, NULL);
    }
    /* Overflow gives HUGE_VAL, which the cap at --max-timeout turns into the maximum. */
    bc->timeout_state = bc->timeout > 0 ? TIMEOUT_VALID : TIMEOUT_INVALID;
    return 1;
}

static int on_start_map(void *ctx)
{
    body_check_t *bc = ctx;
    if (!on_value(bc, true))
        return 0;
    bc->depth++;
    return 1;
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
    body_check_t *bc = ctx;
    if (bc->depth == 1) {
        bc->key_is_timeout = len == 7 && memcmp(key, "timeout", 7) == 0;
        bc->key_target = len == 4 && memcmp(key, "path", 4) == 0   ? 1
                         : len == 4 && memcmp(key, "file", 4) == 0 ? 2
                                                                   : 0;
    }
    return 1;
}

static int on_end_map(void *ctx)
{
    body_check_t *bc = ctx;
    bc->depth--;
    return 1;
}

static int on_start_array(void *ctx)
{
    body_check_t *bc = ctx;
    if (!on_value(bc, false))
        return 0;
    bc->depth++;
    return 1;
}

static int on_end_array(void *ctx)
{
    body_check_t *bc = ctx;
    bc->depth--;
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

body_check_t *body_check_new(void)
{
    body_check_t *bc = xcalloc(1, sizeof(*bc));
    bc->h = yajl_alloc(&callbacks, NULL, bc);
    if (bc->h == NULL) {
        free(bc);
        return NULL;
    }
    return bc;
}

void body_check_free(body_check_t *bc)
{
    if (bc == NULL)
        return;
    yajl_free(bc->h);
    free(bc);
}

static void record_error(body_check_t *bc, const unsigned char *data, size_t len)
{
    bc->failed = true;
    if (bc->not_object) {
        snprintf(bc->error, sizeof(bc->error), "request body must be a JSON object");
        return;
    }
    unsigned char *msg = yajl_get_error(bc->h, 0, data, len);
    const char *text = msg ? (const char *)msg : "unknown error";
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '.'))
        n--;
    snprintf(bc->error, sizeof(bc->error), "request body is not valid JSON: %.*s", (int)n, text);
    if (msg)
        yajl_free_error(bc->h, msg);
}

static void to_yajl(body_check_t *bc, const char *data, size_t len)
{
    if (bc->failed || len == 0)
        return;
    if (yajl_parse(bc->h, (const unsigned char *)data, len) != yajl_status_ok)
        record_error(bc, (const unsigned char *)data, len);
}

static void string_error(body_check_t *bc, const char *what)
{
    bc->failed = true;
    snprintf(bc->error, sizeof(bc->error), "request body is not valid JSON: %s in a string", what);
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Scans string content from p; returns where the string's closing quote is, or NULL
 * when the chunk ends first (or on an error). Keeps the first STRING_PASS_MAX bytes. */
static const char *scan_string(body_check_t *bc, const char *p, const char *end)
{
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (bc->hex_left) {
            if (!is_hex(c))
                return string_error(bc, "bad \\u escape"), NULL;
            bc->hex_left--;
        } else if (bc->escape) {
            if (c == 'u')
                bc->hex_left = 4;
            else if (!strchr("\"\\/bfnrt", c) || c == '\0')
                return string_error(bc, "bad escape"), NULL;
            bc->escape = false;
        } else if (c == '\\') {
            bc->escape = true;
        } else if (c == '"') {
            return p;
        } else if (c < 0x20) {
            return string_error(bc, "control character"), NULL;
        }
        if (bc->string_len < STRING_PASS_MAX)
            bc->string_head[bc->string_len] = (char)c;
        bc->string_len++;
    }
    return NULL;
}

/* yajl keeps a token that spans chunks in a buffer and lexes it again from its start
 * with every chunk: a 20 MiB string payload fed in 64 KiB reads cost it 2 s of the
 * master's loop (quadratic). So strings never reach it whole: this scanner finds
 * where each one ends (escapes, control characters), short ones go through as they
 * are, and a longer one reaches yajl as "x" -- it cannot be the "timeout" key, and
 * its bytes go to the worker, whose json.loads checks them (UTF-8 included). */
void body_check_feed(body_check_t *bc, const void *data, size_t len)
{
    const char *p = data, *end = p + len;
    while (p < end && !bc->failed) {
        if (!bc->in_string) {
            const char *quote = memchr(p, '"', (size_t)(end - p));
            if (quote == NULL) {
                to_yajl(bc, p, (size_t)(end - p));
                return;
            }
            to_yajl(bc, p, (size_t)(quote - p) + 1); /* up to the opening quote */
            bc->in_string = true;
            bc->escape = false;
            bc->hex_left = 0;
            bc->string_len = 0;
            p = quote + 1;
            continue;
        }
        const char *close = scan_string(bc, p, end);
        if (close == NULL)
            return; /* the string goes on in the next chunk, or it failed */
        bc->string_was_long = bc->string_len > STRING_PASS_MAX;
        if (!bc->string_was_long)
            to_yajl(bc, bc->string_head, bc->string_len);
        else
            to_yajl(bc, "x", 1);
        to_yajl(bc, "\"", 1);
        bc->string_was_long = false;
        bc->in_string = false;
        p = close + 1;
    }
}

void body_check_target(const body_check_t *bc, char *out, size_t size)
{
    /* A path or file too long to have been kept makes the target unknown (""). */
    snprintf(out, size, "%s\n%s", bc->target_known[0] ? bc->target[0] : "-",
             bc->target_known[1] ? bc->target[1] : "-");
}

int body_check_finish(body_check_t *bc, bool *has_timeout, double *timeout, const char **error)
{
    /* A string still open: yajl has only its opening quote, and after a complete
     * top-level value it takes `{}"...` for a string yet to end, not for trailing
     * garbage, even at its own end of input (found by tests/fuzz/fuzz_body.c). */
    if (!bc->failed && bc->in_string) {
        bc->failed = true;
        snprintf(bc->error, sizeof(bc->error),
                 "request body is not valid JSON: the body ends inside a string");
    }
    if (!bc->failed && yajl_complete_parse(bc->h) != yajl_status_ok)
        record_error(bc, NULL, 0);
    if (bc->failed) {
        *error = bc->error;
        return -1;
    }
    if (bc->timeout_state == TIMEOUT_INVALID) {
        *error = "timeout must be a number of seconds greater than 0";
        return -1;
    }
    *has_timeout = bc->timeout_state == TIMEOUT_VALID;
    *timeout = isnan(bc->timeout) ? 0 : bc->timeout;
    return 0;
}
