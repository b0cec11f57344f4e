/* test_lines.c -- worker output cut into lines of bounded length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <string.h>

#include "common/buf.h"
#include "master/pool_internal.h"

/* What was emitted, each line followed by '|'. */
static buf_t partial; /* the splitter's unfinished line */
static buf_t seen;
static int emitted;
static void *last_ctx;

static void collect(void *ctx, const char *line, size_t len)
{
    last_ctx = ctx;
    buf_append(&seen, line, len);
    buf_append(&seen, "|", 1);
    emitted++;
}

static int setup(void **state)
{
    (void)state;
    buf_init(&partial);
    buf_init(&seen);
    emitted = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    buf_free(&partial);
    buf_free(&seen);
    return 0;
}

static const char *text(void)
{
    return seen.data ? seen.data : "";
}

static void split(const char *data, size_t max)
{
    lines_split(&partial, data, strlen(data), max, collect, NULL);
}

static void test_whole_lines(void **state)
{
    (void)state;
    split("one\ntwo\n", 16);
    assert_string_equal(text(), "one|two|");
    assert_int_equal(partial.len, 0);
}

static void test_unfinished_line_is_kept(void **state)
{
    (void)state;
    split("one\ntw", 16);
    assert_string_equal(text(), "one|");
    assert_int_equal(partial.len, 2);
    split("o\nthr", 16);
    assert_string_equal(text(), "one|two|");
    lines_flush(&partial, collect, NULL);
    assert_string_equal(text(), "one|two|thr|");
    assert_int_equal(partial.len, 0);
    lines_flush(&partial, collect, NULL); /* nothing left: nothing emitted */
    assert_int_equal(emitted, 3);
}

static void test_empty_lines(void **state)
{
    (void)state;
    split("\n\na\n", 16);
    assert_string_equal(text(), "||a|");
    assert_int_equal(emitted, 3);
}

static void test_nothing_in_nothing_out(void **state)
{
    (void)state;
    split("", 16);
    lines_flush(&partial, collect, NULL);
    assert_int_equal(emitted, 0);
}

/* A line of max bytes or more goes out in pieces of max; its newline ends the rest. */
static void test_long_line_is_split(void **state)
{
    (void)state;
    split("abcdefghij\n", 4);
    assert_string_equal(text(), "abcd|efgh|ij|");
}

static void test_line_of_exactly_max(void **state)
{
    (void)state;
    split("abcd\nxy\n", 4);
    /* "abcd" goes out at max, before its newline is looked at: the newline then ends
     * an empty line (kept as it was when lines.c was split out of pool.c). */
    assert_string_equal(text(), "abcd||xy|");
}

static void test_long_line_across_reads(void **state)
{
    (void)state;
    split("abc", 4);
    assert_int_equal(emitted, 0);
    split("defg", 4);
    assert_string_equal(text(), "abcd|");
    assert_int_equal(partial.len, 3);
    lines_flush(&partial, collect, NULL);
    assert_string_equal(text(), "abcd|efg|");
}

static void test_ctx_is_passed(void **state)
{
    (void)state;
    int marker = 0;
    lines_split(&partial, "x\n", 2, 16, collect, &marker);
    assert_int_equal(emitted, 1);
    assert_ptr_equal(last_ctx, &marker);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whole_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unfinished_line_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_in_nothing_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_is_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_of_exactly_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_across_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctx_is_passed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
