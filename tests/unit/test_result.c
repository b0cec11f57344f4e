/* test_result.c -- a worker's RESULT frame, checked before it reaches a client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <string.h>

#include "common/buf.h"
#include "master/pool_internal.h"
#include "proto/proto.h"

/* A RESULT payload: seq, status, flags, headers (name, value pairs), body. */
static void payload(buf_t *b, uint32_t status, uint32_t flags, const char *const *headers,
                    uint32_t count, const char *body)
{
    buf_init(b);
    proto_put_u32(b, 7);
    proto_put_u32(b, status);
    proto_put_u32(b, flags);
    proto_put_u32(b, count);
    for (uint32_t i = 0; i < count; i++) {
        proto_put_bytes(b, headers[2 * i], strlen(headers[2 * i]));
        proto_put_bytes(b, headers[2 * i + 1], strlen(headers[2 * i + 1]));
    }
    proto_put_bytes(b, body, strlen(body));
}

static const char *parse(const buf_t *b, result_t *r)
{
    return result_parse((const uint8_t *)b->data, b->len, r);
}

/* The payload is refused; it is freed. */
static void expect_invalid(buf_t *b)
{
    result_t r;
    assert_non_null(parse(b, &r));
    result_free(&r);
    buf_free(b);
}

static void expect_valid(buf_t *b)
{
    result_t r;
    assert_null(parse(b, &r));
    result_free(&r);
    buf_free(b);
}

/* A payload up to its headers, encoded by hand. */
static void head(buf_t *b, uint32_t status, uint32_t count)
{
    buf_init(b);
    proto_put_u32(b, 1);
    proto_put_u32(b, status);
    proto_put_u32(b, 0);
    proto_put_u32(b, count);
}

static void test_valid_answer(void **state)
{
    (void)state;
    const char *const h[] = {"Content-Type", "text/plain", "X-Thing", "a b"};
    buf_t b;
    payload(&b, 201, PROTO_RESULT_OUTPUT, h, 2, "hello");
    result_t r;
    assert_null(parse(&b, &r));
    assert_int_equal(r.seq, 7);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.flags, PROTO_RESULT_OUTPUT);
    assert_string_equal(r.headers.data, "Content-Type: text/plain\r\nX-Thing: a b\r\n");
    assert_int_equal(r.body_len, 5);
    assert_memory_equal(r.body, "hello", 5);
    result_free(&r);
    buf_free(&b);
}

static void test_no_headers_empty_body(void **state)
{
    (void)state;
    buf_t b;
    payload(&b, 204, 0, NULL, 0, "");
    result_t r;
    assert_null(parse(&b, &r));
    assert_int_equal(r.headers.len, 0);
    assert_int_equal(r.body_len, 0);
    result_free(&r);
    buf_free(&b);
}

static void test_status_bounds(void **state)
{
    (void)state;
    const uint32_t bad[] = {0, 100, 199, 600, 0xFFFFFFFFu};
    const uint32_t good[] = {200, 404, 599};
    buf_t b;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        payload(&b, bad[i], 0, NULL, 0, "x");
        expect_invalid(&b);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        payload(&b, good[i], 0, NULL, 0, "x");
        expect_valid(&b);
    }
}

/* The master writes these itself; a worker's would break the client's framing. */
static void test_reserved_header_names(void **state)
{
    (void)state;
    const char *const names[] = {"Content-Length", "transfer-encoding", "CONNECTION",
                                 "x-request-id"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *const h[] = {names[i], "1"};
        buf_t b;
        payload(&b, 200, 0, h, 1, "");
        expect_invalid(&b);
    }
}

static void test_header_names_must_be_tokens(void **state)
{
    (void)state;
    const char *const bad[] = {"", "a b", "a:b", "a\r\nb", "caf\xc3\xa9", "(x)"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *const h[] = {bad[i], "v"};
        buf_t b;
        payload(&b, 200, 0, h, 1, "");
        expect_invalid(&b);
    }
    char longest[RESULT_HEADER_NAME_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    longest[RESULT_HEADER_NAME_MAX] = '\0';
    const char *const ok[] = {longest, "v", "!#$%&'*+-.^_`|~09AZaz", "v"};
    buf_t b;
    payload(&b, 200, 0, ok, 2, "");
    expect_valid(&b);
    longest[RESULT_HEADER_NAME_MAX] = 'a';
    longest[RESULT_HEADER_NAME_MAX + 1] = '\0';
    payload(&b, 200, 0, ok, 1, "");
    expect_invalid(&b);
}

static void test_header_values_without_cr_lf_nul(void **state)
{
    (void)state;
    const char *const bad[] = {"a\rb", "a\nb", "x\r\nSet-Cookie: y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *const h[] = {"X-A", bad[i]};
        buf_t b;
        payload(&b, 200, 0, h, 1, "");
        expect_invalid(&b);
    }
    /* A NUL inside the value (strlen would stop there: encode by hand). */
    buf_t b;
    head(&b, 200, 1);
    proto_put_bytes(&b, "X-A", 3);
    proto_put_bytes(&b, "a\0b", 3);
    proto_put_bytes(&b, "", 0);
    expect_invalid(&b);
}

static void test_too_many_headers(void **state)
{
    (void)state;
    buf_t b;
    head(&b, 200, RESULT_HEADERS_MAX + 1);
    expect_invalid(&b);
}

/* Cut anywhere short of its end, a RESULT is invalid; a byte after it, too. */
static void test_truncated_and_trailing(void **state)
{
    (void)state;
    const char *const h[] = {"X-A", "b"};
    buf_t b;
    payload(&b, 200, PROTO_RESULT_RECYCLE, h, 1, "body");
    result_t r;
    for (size_t len = 0; len < b.len; len++) {
        assert_non_null(result_parse((const uint8_t *)b.data, len, &r));
        result_free(&r);
    }
    buf_append(&b, "!", 1);
    assert_non_null(parse(&b, &r));
    assert_int_equal(r.flags, PROTO_RESULT_RECYCLE); /* read, for the caller's drain */
    result_free(&r);
    buf_free(&b);
}

static void test_body_length_past_end(void **state)
{
    (void)state;
    buf_t b;
    head(&b, 200, 0);
    proto_put_u32(&b, 0xFFFFFFFFu); /* a body length with nothing behind it */
    expect_invalid(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_answer),
        cmocka_unit_test(test_no_headers_empty_body),
        cmocka_unit_test(test_status_bounds),
        cmocka_unit_test(test_reserved_header_names),
        cmocka_unit_test(test_header_names_must_be_tokens),
        cmocka_unit_test(test_header_values_without_cr_lf_nul),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_body_length_past_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
