/* fuzz_body.c -- the streaming body check on any bytes in random chunks: the split never matters.
 *
 * Fuzzes master/body.c (body_check_feed in chunks the input chooses, then _finish and
 * _target). Asserts: (1) fed whole, byte by byte and in random chunks, it gives the same
 * verdict, error text, timeout and target; (2) against json_check.h, read apart from
 * body.c and yajl: what it accepts is a JSON object (leniently: yajl takes some bad
 * UTF-8 and \v, \f as space), a strictly valid object is accepted unless its top-level
 * "timeout" is not a number above 0, and an accepted timeout is strtod of its text.
 * The first input byte seeds the chunk sizes; the rest is the body. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "json_check.h"
#include "master/body.h"

typedef struct verdict {
    int rc;
    bool has_timeout;
    double timeout;
    char error[300];
    char target[2 * 257 + 2];
} verdict_t;

/* mode 0: whole; 1: byte by byte; 2: chunks from the seed. */
static void run(const uint8_t *body, size_t len, int mode, uint32_t seed, verdict_t *v)
{
    memset(v, 0, sizeof(*v));
    body_check_t *bc = body_check_new();
    FUZZ_CHECK(bc != NULL, "body_check_new failed");
    fuzz_chunker_t ch;
    fuzz_chunker_init(&ch, seed);
    for (size_t off = 0; off < len;) {
        size_t n = mode == 0 ? len - off : mode == 1 ? 1 : fuzz_chunk(&ch, len - off);
        /* Each chunk in its own exact-size allocation, as reads arrive. */
        uint8_t *piece = malloc(n);
        memcpy(piece, body + off, n);
        body_check_feed(bc, piece, n);
        free(piece);
        off += n;
    }
    const char *error = NULL;
    v->rc = body_check_finish(bc, &v->has_timeout, &v->timeout, &error);
    if (v->rc == 0)
        body_check_target(bc, v->target, sizeof(v->target));
    else
        snprintf(v->error, sizeof(v->error), "%s", error ? error : "(null)");
    body_check_free(bc);
}

static void same(const verdict_t *a, const verdict_t *b, const char *how)
{
    FUZZ_CHECK(a->rc == b->rc, "%s: rc %d, whole: %d (%s / %s)", how, b->rc, a->rc, b->error,
               a->error);
    FUZZ_CHECK(strcmp(a->error, b->error) == 0, "%s: error '%s', whole: '%s'", how, b->error,
               a->error);
    FUZZ_CHECK(a->has_timeout == b->has_timeout && a->timeout == b->timeout,
               "%s: timeout %d %g, whole: %d %g", how, b->has_timeout, b->timeout, a->has_timeout,
               a->timeout);
    FUZZ_CHECK(strcmp(a->target, b->target) == 0, "%s: target '%s', whole '%s'", how, b->target,
               a->target);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 1)
        return 0;
    uint32_t seed = data[0];
    const uint8_t *body = data + 1;
    len--;

    verdict_t whole, bytes, chunks;
    run(body, len, 0, seed, &whole);
    run(body, len, 1, seed, &bytes);
    run(body, len, 2, seed, &chunks);
    same(&whole, &bytes, "byte by byte");
    same(&whole, &chunks, "in chunks");

    jc_t j;
    bool is_object;
    if (whole.rc == 0) {
        bool ok = jc_document(&j, body, len, JC_LENIENT, &is_object);
        FUZZ_CHECK((ok && is_object) || j.too_deep, "accepted, but not a JSON object");
        FUZZ_CHECK(!whole.has_timeout || (whole.timeout > 0 && !isnan(whole.timeout)),
                   "accepted timeout %g", whole.timeout);
    }
    if (jc_document(&j, body, len, JC_STRICT, &is_object) && is_object) {
        bool want_ok = j.timeout_state != JC_TIMEOUT_INVALID;
        FUZZ_CHECK((whole.rc == 0) == want_ok, "valid object: rc %d (%s), timeout state %d",
                   whole.rc, whole.error, j.timeout_state);
        if (want_ok) {
            FUZZ_CHECK(whole.has_timeout == (j.timeout_state == JC_TIMEOUT_VALID), "has_timeout %d",
                       whole.has_timeout);
            FUZZ_CHECK(!whole.has_timeout || whole.timeout == j.timeout, "timeout %g, want %g",
                       whole.timeout, j.timeout);
        }
    }
    return 0;
}
