/* test_json.c -- JSON string escaping and the master's error bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"

/* json_append_string of `len` bytes of s into a fresh buffer, compared with `want`. */
static void check(const char *s, size_t len, const char *want)
{
    buf_t b = BUF_INIT;
    json_append_string(&b, s, len);
    assert_non_null(b.data);
    assert_int_equal(b.len, strlen(want));
    assert_string_equal(b.data, want);
    buf_free(&b);
}

#define CHECK(s, want) check((s), strlen(s), (want))

static void test_plain(void **state)
{
    (void)state;
    CHECK("hello world", "\"hello world\"");
}

static void test_empty(void **state)
{
    (void)state;
    CHECK("", "\"\"");
}

static void test_quote_and_backslash(void **state)
{
    (void)state;
    CHECK("say \"hi\"", "\"say \\\"hi\\\"\"");
    CHECK("C:\\dir\\", "\"C:\\\\dir\\\\\"");
}

static void test_newline_cr_tab(void **state)
{
    (void)state;
    CHECK("a\nb\rc\td", "\"a\\nb\\rc\\td\"");
}

static void test_control_chars_as_u00xx(void **state)
{
    (void)state;
    CHECK("\x01", "\"\\u0001\"");
    CHECK("\x1f", "\"\\u001f\"");
    CHECK("\x08\x0c", "\"\\u0008\\u000c\"");
    CHECK("a\x1b[0m", "\"a\\u001b[0m\"");
}

static void test_nul_byte_escaped(void **state)
{
    (void)state;
    check("a\0b", 3, "\"a\\u0000b\"");
}

static void test_len_limits_input(void **state)
{
    (void)state;
    check("abcdef", 3, "\"abc\"");
}

static void test_non_ascii_kept(void **state)
{
    (void)state;
    CHECK("caf\xc3\xa9 \x7f", "\"caf\xc3\xa9 \x7f\"");
    CHECK("\xe2\x82\xac \xf0\x9f\x91\x8b", "\"\xe2\x82\xac \xf0\x9f\x91\x8b\""); /* 3 and 4 bytes */
    CHECK("a/b", "\"a/b\""); /* slash needs no escape */
}

/* Each byte of an invalid sequence is U+FFFD, so that any JSON parser takes the text. */
static void test_invalid_utf8_replaced(void **state)
{
    (void)state;
    check("\xff\xfe", 2, "\"\\ufffd\\ufffd\"");
    CHECK("a\xc0\xaf"
          "b",
          "\"a\\ufffd\\ufffdb\"");                                 /* overlong "/" */
    CHECK("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong, 3 bytes */
    CHECK("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* a surrogate */
    CHECK("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* past U+10FFFF */
    check("\xe2\x82", 2, "\"\\ufffd\\ufffd\"");                    /* cut short */
    CHECK("\xc3\xa9\x80", "\"\xc3\xa9\\ufffd\"");                  /* a stray continuation */
}

static void test_long_line(void **state)
{
    (void)state;
    size_t n = 6 * ((64 * 1024 + 5) / 6); /* just over 64 KiB, whole groups of 6 */
    char *in = malloc(n);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)("ab\"\x01\xc3\xa9"[i % 6]);
    buf_t b = BUF_INIT;
    json_append_string(&b, in, n);
    /* every 6 bytes: a b \" \u0001 then the 2-byte e-acute kept */
    assert_int_equal(b.len, 2 + (n / 6) * (1 + 1 + 2 + 6 + 2));
    buf_free(&b);
    free(in);
}

static void test_every_control_char(void **state)
{
    (void)state;
    for (int c = 1; c < 0x20; c++) {
        char in[1] = {(char)c};
        buf_t b = BUF_INIT;
        json_append_string(&b, in, 1);
        if (c == '\n' || c == '\r' || c == '\t') {
            assert_int_equal(b.len, 4);
        } else {
            char want[16];
            snprintf(want, sizeof(want), "\"\\u%04x\"", c);
            assert_string_equal(b.data, want);
        }
        buf_free(&b);
    }
}

static void test_appends_to_existing(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_append_str(&b, "x=");
    json_append_string(&b, "y", 1);
    assert_string_equal(b.data, "x=\"y\"");
    buf_free(&b);
}

static void test_error_body_exact(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    json_error_body(&b, 400, "x");
    assert_string_equal(b.data, "{\"message\": \"x\", \"code\": 400}");
    assert_int_equal(b.len, strlen("{\"message\": \"x\", \"code\": 400}"));
    buf_free(&b);
}

static void test_error_body_escapes_message(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    json_error_body(&b, 500, "bad \"thing\"\n");
    assert_string_equal(b.data, "{\"message\": \"bad \\\"thing\\\"\\n\", \"code\": 500}");
    buf_free(&b);
}

static void test_error_body_long_message(void **state)
{
    (void)state;
    char msg[1001];
    memset(msg, 'm', 1000);
    msg[1000] = '\0';
    buf_t b = BUF_INIT;
    json_error_body(&b, 413, msg);
    const char *prefix = "{\"message\": \"";
    const char *suffix = "\", \"code\": 413}";
    assert_int_equal(b.len, strlen(prefix) + 1000 + strlen(suffix));
    assert_memory_equal(b.data, prefix, strlen(prefix));
    assert_string_equal(b.data + strlen(prefix) + 1000, suffix);
    buf_free(&b);
}

/* The access line's numbers, written without printf: as printf writes them, but for
 * ties, rounded half away from zero. */
static void test_buf_append_int_and_fixed(void **state)
{
    (void)state;
    static const long long ints[] = {0,
                                     7,
                                     -7,
                                     10,
                                     499,
                                     2147483647,
                                     -2147483648LL,
                                     9223372036854775807LL,
                                     -9223372036854775807LL - 1};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        buf_t b = BUF_INIT;
        char want[32];
        snprintf(want, sizeof(want), "%lld", ints[i]);
        buf_append_int(&b, ints[i]);
        assert_string_equal(b.data, want);
        buf_free(&b);
    }
    static const struct {
        double v;
        int decimals;
        const char *want;
    } fixed[] = {
        {0, 3, "0.000"},      {1.5, 2, "1.50"},          {0.0004, 3, "0.000"},
        {0.0006, 3, "0.001"}, {12.3456, 2, "12.35"},     {-2.25, 1, "-2.3"},
        {-0.0001, 2, "0.00"}, {999.9996, 3, "1000.000"}, {3.0, 0, "3"},
        {1e300, 3, "0.000"},  {NAN, 3, "0.000"},         {123456.789, 6, "123456.789000"},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        buf_t b = BUF_INIT;
        buf_append_fixed(&b, fixed[i].v, fixed[i].decimals);
        assert_string_equal(b.data, fixed[i].want);
        buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_int_and_fixed),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_quote_and_backslash),
        cmocka_unit_test(test_newline_cr_tab),
        cmocka_unit_test(test_control_chars_as_u00xx),
        cmocka_unit_test(test_nul_byte_escaped),
        cmocka_unit_test(test_len_limits_input),
        cmocka_unit_test(test_non_ascii_kept),
        cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_every_control_char),
        cmocka_unit_test(test_appends_to_existing),
        cmocka_unit_test(test_error_body_exact),
        cmocka_unit_test(test_error_body_escapes_message),
        cmocka_unit_test(test_error_body_long_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
