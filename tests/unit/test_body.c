/* test_body.c -- the streaming check of an execution body (JSON object + timeout). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "master/body.h"

typedef struct result {
    int rc;
    bool has_timeout;
    double timeout;
    const char *error; /* points to last_error: valid until the next run */
} result_t;

static char last_error[300];

/* Feeds `len` bytes of `body` in chunks of `chunk` bytes (0: all at once). */
static result_t run_n(const char *body, size_t len, size_t chunk)
{
    result_t r;
    memset(&r, 0, sizeof(r));
    r.has_timeout = true; /* must be set by a successful finish */
    r.timeout = -42;
    body_check_t *bc = body_check_new();
    assert_non_null(bc);
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        body_check_feed(bc, body + off, n);
    }
    r.rc = body_check_finish(bc, &r.has_timeout, &r.timeout, &r.error);
    memset(last_error, 0, sizeof(last_error));
    if (r.rc != 0) {
        assert_non_null(r.error);
        strncpy(last_error, r.error, sizeof(last_error) - 1);
    }
    r.error = r.rc != 0 ? last_error : NULL; /* the original is freed with bc */
    body_check_free(bc);
    return r;
}

static result_t run_chunked(const char *body, size_t chunk)
{
    return run_n(body, strlen(body), chunk);
}

static result_t run(const char *body)
{
    return run_chunked(body, 0);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define NOT_JSON "request body is not valid JSON"
#define NOT_OBJECT "request body must be a JSON object"
#define BAD_TIMEOUT "timeout must be "

static void expect_ok_no_timeout(result_t r)
{
    assert_int_equal(r.rc, 0);
    assert_false(r.has_timeout);
}

static void expect_error_prefix(result_t r, const char *prefix)
{
    assert_int_equal(r.rc, -1);
    assert_non_null(r.error);
    if (!starts_with(r.error, prefix))
        fail_msg("error '%s' does not start with '%s'", r.error, prefix);
}

static void expect_timeout(result_t r, double want)
{
    if (r.rc != 0)
        fail_msg("unexpected error: %s", r.error);
    assert_true(r.has_timeout);
    assert_true(fabs(r.timeout - want) < 1e-12);
}

static void test_valid_object(void **state)
{
    (void)state;
    expect_ok_no_timeout(run("{}"));
    expect_ok_no_timeout(run("{\"a\": 1, \"b\": [true, false, null, \"s\", {\"c\": 2.5}]}"));
    expect_ok_no_timeout(run("  \n{ \"x\" : \"y\" }\n  "));
}

static void test_valid_object_one_byte_at_a_time(void **state)
{
    (void)state;
    const char *body =
        "{\"name\": \"w\\u00e9rld\", \"n\": [1, 2, {\"k\": null}], \"timeout\": 12.25}";
    expect_timeout(run_chunked(body, 1), 12.25);
    expect_timeout(run_chunked(body, 3), 12.25);
    expect_timeout(run_chunked(body, 7), 12.25);
}

static void test_not_json(void **state)
{
    (void)state;
    expect_error_prefix(run("hello"), NOT_JSON);
    expect_error_prefix(run("{"), NOT_JSON);
    expect_error_prefix(run("{\"a\": }"), NOT_JSON);
    expect_error_prefix(run("{'a': 1}"), NOT_JSON);
    expect_error_prefix(run("{\"a\": 1,}"), NOT_JSON);
    expect_error_prefix(run_chunked("{\"a\" 1}", 1), NOT_JSON);
}

static void test_empty_body_is_error(void **state)
{
    (void)state;
    expect_error_prefix(run(""), NOT_JSON);
    expect_error_prefix(run("   "), NOT_JSON);
}

static void test_not_json_message_has_detail(void **state)
{
    (void)state;
    result_t r = run("{\"a\": nope}");
    expect_error_prefix(r, NOT_JSON ": ");
    assert_true(strlen(r.error) > strlen(NOT_JSON ": "));
    assert_null(strchr(r.error, '\n'));
}

static void test_top_level_not_object(void **state)
{
    (void)state;
    const char *bodies[] = {"[]", "[{\"timeout\": 1}]", "\"str\"", "5", "-1.5", "true", "null"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        result_t r = run(bodies[i]);
        assert_int_equal(r.rc, -1);
        if (strcmp(r.error, NOT_OBJECT) != 0)
            fail_msg("body %s: error '%s'", bodies[i], r.error);
        r = run_chunked(bodies[i], 1);
        assert_int_equal(r.rc, -1);
        assert_string_equal(r.error, NOT_OBJECT);
    }
}

static void test_timeout_absent(void **state)
{
    (void)state;
    result_t r = run("{\"timeouts\": 5, \"Timeout\": 3, \"time\": 1}");
    expect_ok_no_timeout(r);
}

static void test_timeout_values(void **state)
{
    (void)state;
    expect_timeout(run("{\"timeout\": 1.5}"), 1.5);
    expect_timeout(run("{\"timeout\": 30}"), 30);
    expect_timeout(run("{\"a\": 1, \"timeout\": 0.001, \"b\": 2}"), 0.001);
    expect_timeout(run("{\"timeout\": 2e1}"), 20);
}

static void test_timeout_invalid(void **state)
{
    (void)state;
    const char *bodies[] = {
        "{\"timeout\": 0}",     "{\"timeout\": -1}",
        "{\"timeout\": \"5\"}", "{\"timeout\": null}",
        "{\"timeout\": []}",    "{\"timeout\": {}}",
        "{\"timeout\": true}",  "{\"timeout\": -0.0}",
        "{\"timeout\": [5]}",   "{\"timeout\": {\"timeout\": 5}}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        result_t r = run(bodies[i]);
        if (r.rc != -1)
            fail_msg("body %s accepted", bodies[i]);
        expect_error_prefix(r, BAD_TIMEOUT);
    }
}

static void test_timeout_duplicate_last_wins(void **state)
{
    (void)state;
    /* valid then invalid: the invalid one counts */
    expect_error_prefix(run("{\"timeout\": 5, \"timeout\": -1}"), BAD_TIMEOUT);
    expect_error_prefix(run("{\"timeout\": 5, \"timeout\": \"x\"}"), BAD_TIMEOUT);
    /* invalid then valid: the valid value */
    expect_timeout(run("{\"timeout\": -1, \"timeout\": 7}"), 7);
    expect_timeout(run("{\"timeout\": null, \"timeout\": 2.5}"), 2.5);
    expect_timeout(run("{\"timeout\": 1, \"timeout\": 9}"), 9);
}

static void test_timeout_huge(void **state)
{
    (void)state;
    result_t r = run("{\"timeout\": 1e400}");
    assert_int_equal(r.rc, 0);
    assert_true(r.has_timeout);
    assert_true(r.timeout > 1e300);
    assert_true(isinf(r.timeout));
}

static void test_timeout_long_literal(void **state)
{
    (void)state;
    /* longer than the 64-byte stack copy */
    const char *body = "{\"timeout\": 1.0000000000000000000000000000000000000000000000000000000"
                       "000000000000000000000000000000000000000001}";
    expect_timeout(run(body), 1.0);
    expect_timeout(run_chunked(body, 1), 1.0);
    expect_timeout(run("{\"timeout\": 123456789012345678901234567890}"),
                   123456789012345678901234567890.0);
}

static void test_nested_timeout_ignored(void **state)
{
    (void)state;
    expect_ok_no_timeout(run("{\"a\": {\"timeout\": -1}}"));
    expect_ok_no_timeout(run("{\"a\": [{\"timeout\": \"x\"}]}"));
    expect_timeout(run("{\"a\": {\"timeout\": -1}, \"timeout\": 4}"), 4);
    expect_timeout(run("{\"timeout\": 4, \"a\": {\"timeout\": -1}}"), 4);
}

static void test_timeout_as_value_not_key(void **state)
{
    (void)state;
    expect_ok_no_timeout(run("{\"a\": \"timeout\", \"b\": 0}"));
    expect_ok_no_timeout(run("{\"a\": [\"timeout\", 0]}"));
}

static void test_trailing_garbage(void **state)
{
    (void)state;
    expect_error_prefix(run("{} x"), NOT_JSON);
    expect_error_prefix(run("{}{}"), NOT_JSON);
    expect_error_prefix(run("{\"timeout\": 1}]"), NOT_JSON);
    expect_error_prefix(run_chunked("{} 5", 1), NOT_JSON);
    /* yajl waits for a string opened after the value to end, even at its end of input
     * (tests/fuzz/corpus/body/regress-trailing-open-string). */
    expect_error_prefix(run("{}\": 2"), NOT_JSON);
    expect_error_prefix(run_chunked("{\"timeout\": 1} \"", 1), NOT_JSON);
    expect_error_prefix(run("{\"a\": \"unterminated"), NOT_JSON);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    expect_error_prefix(run("{\"a\": \"\xff\"}"), NOT_JSON);
    expect_error_prefix(run("{\"\xc3\": 1}"), NOT_JSON);
    expect_error_prefix(run("{\"a\": \"\x80\"}"), NOT_JSON);     /* lone continuation */
    expect_error_prefix(run("{\"a\": \"\xe2\x82\"}"), NOT_JSON); /* truncated sequence */
    expect_error_prefix(run_chunked("{\"a\": \"x\xff\"}", 1), NOT_JSON);
    /* valid multi-byte UTF-8 is fine, also split across chunks */
    expect_ok_no_timeout(run_chunked("{\"a\": \"caf\xc3\xa9 \xe2\x82\xac\"}", 1));
}

static void test_nul_byte_in_body(void **state)
{
    (void)state;
    const char body[] = "{\"a\": 1}\0";
    expect_error_prefix(run_n(body, sizeof(body) - 1, 0), NOT_JSON); /* includes the NUL */
}

static void test_feed_after_error_ignored(void **state)
{
    (void)state;
    body_check_t *bc = body_check_new();
    assert_non_null(bc);
    body_check_feed(bc, "nope", 4);
    body_check_feed(bc, "{}", 2);
    bool has = true;
    double t = -1;
    const char *error = NULL;
    assert_int_equal(body_check_finish(bc, &has, &t, &error), -1);
    assert_non_null(error);
    assert_true(starts_with(error, NOT_JSON));
    body_check_free(bc);
    body_check_free(NULL);
}

static void test_deeply_nested_valid(void **state)
{
    (void)state;
    /* {"a":[[[...]]],"b":{"c":{...}},"timeout":3}: depth returns to 1 after nesting */
    enum { DEPTH = 100 };
    char body[8 * DEPTH + 64];
    size_t n = 0;
    memcpy(body + n, "{\"a\":", 5);
    n += 5;
    for (int i = 0; i < DEPTH; i++)
        body[n++] = '[';
    for (int i = 0; i < DEPTH; i++)
        body[n++] = ']';
    memcpy(body + n, ",\"b\":", 5);
    n += 5;
    for (int i = 0; i < DEPTH; i++) {
        memcpy(body + n, "{\"c\":", 5);
        n += 5;
    }
    body[n++] = '0';
    for (int i = 0; i < DEPTH; i++)
        body[n++] = '}';
    memcpy(body + n, ",\"timeout\":3}", 14); /* with the NUL */
    expect_timeout(run(body), 3);
    expect_timeout(run_chunked(body, 1), 3);
}

/* ---- the string scanner in front of yajl (long strings never reach it whole) ---- */

static char *long_body(const char *before, size_t n, char fill, const char *after)
{
    size_t a = strlen(before), b = strlen(after);
    char *body = malloc(a + n + b + 1);
    assert_non_null(body);
    memcpy(body, before, a);
    memset(body + a, fill, n);
    memcpy(body + a + n, after, b + 1);
    return body;
}

static void test_long_string_then_timeout(void **state)
{
    (void)state;
    char *body = long_body("{\"payload\": \"", 100000, 'z', "\", \"timeout\": 2.5}");
    expect_timeout(run_chunked(body, 4096), 2.5);
    expect_timeout(run_chunked(body, 1), 2.5);
    free(body);
}

static void test_escaped_quotes_split_across_chunks(void **state)
{
    (void)state;
    const char *body = "{\"a\": \"x\\\"y\\\\\", \"timeout\": 3}";
    for (size_t chunk = 1; chunk <= 8; chunk++)
        expect_timeout(run_chunked(body, chunk), 3);
}

static void test_long_string_with_escapes_ends_where_it_should(void **state)
{
    (void)state;
    /* 300 escaped quotes: the string is long, and only its last quote closes it. */
    char body[2048] = "{\"p\": \"";
    for (int i = 0; i < 300; i++)
        strcat(body, "\\\"");
    strcat(body, "\", \"timeout\": 4}");
    expect_timeout(run_chunked(body, 7), 4);
}

static void test_control_character_in_long_string(void **state)
{
    (void)state;
    char *body = long_body("{\"p\": \"", 1000, 'z', "\n\"}");
    expect_error_prefix(run_chunked(body, 64), NOT_JSON);
    free(body);
}

static void test_bad_escape_in_long_string(void **state)
{
    (void)state;
    char *body = long_body("{\"p\": \"", 1000, 'z', "\\q\"}");
    expect_error_prefix(run_chunked(body, 64), NOT_JSON);
    free(body);
    char *hex = long_body("{\"p\": \"", 1000, 'z', "\\u12g4\"}");
    expect_error_prefix(run_chunked(hex, 64), NOT_JSON);
    free(hex);
}

static void test_long_key_is_not_timeout(void **state)
{
    (void)state;
    char *body = long_body("{\"", 1000, 'k', "\": 0}");
    expect_ok_no_timeout(run_chunked(body, 100));
    free(body);
}

static void test_unterminated_long_string(void **state)
{
    (void)state;
    char *body = long_body("{\"p\": \"", 1000, 'z', "");
    expect_error_prefix(run_chunked(body, 100), NOT_JSON);
    free(body);
}

/* The body fed in chunks of `chunk` bytes (0: at once) must check out with `want`. */
static void expect_target(const char *body, size_t chunk, const char *want)
{
    body_check_t *bc = body_check_new();
    size_t len = strlen(body), step = chunk ? chunk : len;
    for (size_t off = 0; off < len; off += step)
        body_check_feed(bc, body + off, len - off < step ? len - off : step);
    bool has;
    double t;
    const char *err;
    assert_int_equal(body_check_finish(bc, &has, &t, &err), 0);
    char target[600];
    body_check_target(bc, target, sizeof(target));
    assert_string_equal(target, want);
    body_check_free(bc);
}

static void test_target_is_path_and_file(void **state)
{
    (void)state;
    const char *body = "{\"path\": \"/usr/code\", \"env\": {\"path\": \"no\"}, \"file\": \"a.py\"}";
    for (size_t chunk = 0; chunk <= 3; chunk++)
        expect_target(body, chunk, "/usr/code\na.py");
}

static void test_target_unknown_when_absent_or_long(void **state)
{
    (void)state;
    char *body = long_body("{\"file\": 3, \"path\": \"", 1000, 'p', "\"}");
    expect_target(body, 0, "-\n-");
    expect_target(body, 7, "-\n-");
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_object),
        cmocka_unit_test(test_valid_object_one_byte_at_a_time),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_empty_body_is_error),
        cmocka_unit_test(test_not_json_message_has_detail),
        cmocka_unit_test(test_top_level_not_object),
        cmocka_unit_test(test_timeout_absent),
        cmocka_unit_test(test_timeout_values),
        cmocka_unit_test(test_timeout_invalid),
        cmocka_unit_test(test_timeout_duplicate_last_wins),
        cmocka_unit_test(test_timeout_huge),
        cmocka_unit_test(test_timeout_long_literal),
        cmocka_unit_test(test_nested_timeout_ignored),
        cmocka_unit_test(test_timeout_as_value_not_key),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_nul_byte_in_body),
        cmocka_unit_test(test_feed_after_error_ignored),
        cmocka_unit_test(test_deeply_nested_valid),
        cmocka_unit_test(test_long_string_then_timeout),
        cmocka_unit_test(test_escaped_quotes_split_across_chunks),
        cmocka_unit_test(test_long_string_with_escapes_ends_where_it_should),
        cmocka_unit_test(test_control_character_in_long_string),
        cmocka_unit_test(test_bad_escape_in_long_string),
        cmocka_unit_test(test_long_key_is_not_timeout),
        cmocka_unit_test(test_unterminated_long_string),
        cmocka_unit_test(test_target_is_path_and_file),
        cmocka_unit_test(test_target_unknown_when_absent_or_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
