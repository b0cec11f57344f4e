/* fuzz_json.c -- json_append_text() on any bytes: always one strict JSON string, decoding right.
 *
 * Fuzzes json_append_text() and json_error_body() (common/json.c). Asserts that the
 * text is always one strict JSON string that decodes to the input, each byte of an
 * invalid UTF-8 sequence as U+FFFD, and that the error body is one JSON object. The
 * judge is json_check.h, written apart from json.c: a function's output goes into JSON
 * log records as it is, so no byte it writes may break a reader of the log. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "fuzz.h"
#include "json_check.h"

/* What the string must decode to: the input, with U+FFFD for each byte that does not
 * start a valid UTF-8 sequence. */
static uint8_t *expected_text(const uint8_t *data, size_t len, size_t *out_len)
{
    uint8_t *out = malloc(len * 3 + 1);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = jc_utf8(data + i, len - i, &cp);
        if (k == 0) {
            memcpy(out + n, "\xef\xbf\xbd", 3);
            n += 3;
            i++;
        } else {
            memcpy(out + n, data + i, k);
            n += k;
            i += k;
        }
    }
    *out_len = n;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    buf_t b = BUF_INIT;
    json_append_text(&b, (const char *)data, len);

    jc_t j;
    memset(&j, 0, sizeof(j));
    j.s = (const uint8_t *)b.data, j.len = b.len, j.mode = JC_STRICT;
    j.out = malloc(len * 3 + 1), j.out_cap = len * 3 + 1;
    FUZZ_CHECK(jc_string(&j), "not a strict JSON string at byte %zu of %zu", j.pos, b.len);
    FUZZ_CHECK(j.pos == b.len, "%zu bytes after the string", b.len - j.pos);

    size_t want_len;
    uint8_t *want = expected_text(data, len, &want_len);
    FUZZ_CHECK(j.out_len == want_len && memcmp(j.out, want, want_len) == 0,
               "decodes to %zu bytes, expected %zu", j.out_len, want_len);
    free(want);
    free(j.out);
    buf_free(&b);

    /* The master's error bodies: any message, still one object. */
    char *msg = strndup((const char *)data, len);
    int code = len ? (int)data[0] * 3 - 100 : 400;
    json_error_body(&b, code, msg);
    bool is_object;
    FUZZ_CHECK(jc_document(&j, (const uint8_t *)b.data, b.len, JC_STRICT, &is_object) && is_object,
               "error body is not a JSON object: %s", b.data);
    free(msg);
    buf_free(&b);
    return 0;
}
