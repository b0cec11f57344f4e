/* test_reqline.c -- the request-line check that stands in for http-parser's strict mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include "master/reqline.h"

static bool valid(const char *line)
{
    return reqline_valid(line, strlen(line));
}

static void test_accepts_ordinary_lines(void **state)
{
    (void)state;
    assert_true(valid("POST / HTTP/1.1\r\n"));
    assert_true(valid("GET /__health HTTP/1.0\r\n"));
    assert_true(valid("POST /a/b?c=d HTTP/1.1\n"));
    assert_true(valid("PATCH * HTTP/1.1\r\n"));
}

static void test_rejects_bad_version(void **state)
{
    (void)state;
    assert_false(valid("POST / HTTX/1.1\r\n"));
    assert_false(valid("POST / HTTP/1\r\n"));
    assert_false(valid("POST / HTTP/1.12\r\n"));
    assert_false(valid("POST / http/1.1\r\n"));
    assert_false(valid("POST / HTTP/x.1\r\n"));
}

static void test_rejects_bad_shape(void **state)
{
    (void)state;
    assert_false(valid("POST  / HTTP/1.1\r\n"));     /* two spaces */
    assert_false(valid("PO ST / HTTP/1.1\r\n"));     /* space in method */
    assert_false(valid("POST / HTTP/1.1 junk\r\n")); /* trailing junk */
    assert_false(valid("POST /\x01 HTTP/1.1\r\n"));  /* control character in target */
    assert_false(valid("POST HTTP/1.1\r\n"));        /* no target */
    assert_false(valid(" / HTTP/1.1\r\n"));          /* no method */
    assert_false(valid("\x01\x02garbage\r\n"));
}

static void test_needs_its_line_feed(void **state)
{
    (void)state;
    assert_false(valid("POST / HTTP/1.1"));
    assert_false(reqline_valid("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_ordinary_lines),
        cmocka_unit_test(test_rejects_bad_version),
        cmocka_unit_test(test_rejects_bad_shape),
        cmocka_unit_test(test_needs_its_line_feed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
