/* test_reqid.c -- request id validation and generation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "master/reqid.h"

static bool valid(const char *s)
{
    return reqid_valid(s, strlen(s));
}

static void test_valid_simple(void **state)
{
    (void)state;
    assert_true(valid("a"));
    assert_true(valid("Z"));
    assert_true(valid("0"));
    assert_true(valid("req-123_abc.DEF"));
    assert_true(valid("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"));
}

static void test_valid_max_length(void **state)
{
    (void)state;
    char id[REQID_MAX + 2];
    memset(id, 'a', sizeof(id));
    assert_true(reqid_valid(id, 128));
    assert_false(reqid_valid(id, 129));
}

static void test_invalid_empty(void **state)
{
    (void)state;
    assert_false(reqid_valid("", 0));
    assert_false(reqid_valid("abc", 0)); /* the length decides, not the NUL */
}

static void test_invalid_characters(void **state)
{
    (void)state;
    assert_false(valid("a b"));
    assert_false(valid("a/b"));
    assert_false(valid("../x"));
    assert_false(valid("a\tb"));
    assert_false(valid("a\nb"));
    assert_false(valid("a\"b"));
    assert_false(valid("a:b"));
    assert_false(valid("a+b"));
    assert_false(reqid_valid("a\0b", 3));
}

static void test_invalid_non_ascii(void **state)
{
    (void)state;
    assert_false(valid("caf\xc3\xa9")); /* UTF-8 e-acute */
    assert_false(valid("\x80"));
    assert_false(valid("abc\xff"));
}

static void test_every_byte(void **state)
{
    (void)state;
    /* exactly 26 + 26 + 10 + 3 byte values are allowed */
    int allowed = 0;
    for (int c = 0; c < 256; c++) {
        char s[1] = {(char)c};
        if (reqid_valid(s, 1))
            allowed++;
    }
    assert_int_equal(allowed, 65);
}

static void test_valid_only_checks_len_bytes(void **state)
{
    (void)state;
    assert_true(reqid_valid("abc def", 3));
}

static void test_generated_format(void **state)
{
    (void)state;
    reqid_seed();
    for (int n = 0; n < 100; n++) {
        char id[REQID_MAX + 1];
        memset(id, '#', sizeof(id));
        reqid_generate(id);
        assert_int_equal(strlen(id), 16);
        for (size_t i = 0; i < 16; i++) {
            char c = id[i];
            assert_true((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
        }
        assert_true(reqid_valid(id, strlen(id)));
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_generated_distinct(void **state)
{
    (void)state;
    enum { N = 10000 };
    char(*ids)[17] = malloc(sizeof(*ids) * N);
    assert_non_null(ids);
    reqid_seed();
    for (int i = 0; i < N; i++) {
        char id[REQID_MAX + 1];
        reqid_generate(id);
        assert_int_equal(strlen(id), 16);
        memcpy(ids[i], id, 17);
    }
    qsort(ids, N, sizeof(*ids), cmp_str);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

static void test_generated_not_sequential(void **state)
{
    (void)state;
    /* consecutive ids do not reveal the counter: they differ in many hex digits */
    reqid_seed();
    char a[REQID_MAX + 1], b[REQID_MAX + 1];
    reqid_generate(a);
    reqid_generate(b);
    int differing = 0;
    for (int i = 0; i < 16; i++)
        differing += a[i] != b[i];
    assert_true(differing >= 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_simple),
        cmocka_unit_test(test_valid_max_length),
        cmocka_unit_test(test_invalid_empty),
        cmocka_unit_test(test_invalid_characters),
        cmocka_unit_test(test_invalid_non_ascii),
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_valid_only_checks_len_bytes),
        cmocka_unit_test(test_generated_format),
        cmocka_unit_test(test_generated_distinct),
        cmocka_unit_test(test_generated_not_sequential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
