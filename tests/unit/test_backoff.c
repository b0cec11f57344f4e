/* test_backoff.c -- restart storms and the back-off between worker starts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "master/pool_internal.h"

static backoff_t b;

static int setup(void **state)
{
    (void)state;
    memset(&b, 0, sizeof(b));
    return 0;
}

static void test_backoff_ms_doubles_to_the_cap(void **state)
{
    (void)state;
    assert_int_equal(backoff_ms(0), 0);
    assert_int_equal(backoff_ms(1), 0); /* the first retry is at once */
    assert_int_equal(backoff_ms(2), BACKOFF_BASE_MS);
    assert_int_equal(backoff_ms(3), 2 * BACKOFF_BASE_MS);
    assert_int_equal(backoff_ms(4), 4 * BACKOFF_BASE_MS);
    unsigned last = 0;
    for (unsigned f = 1; f < 40; f++) {
        unsigned ms = backoff_ms(f);
        assert_true(ms >= last);
        assert_true(ms <= BACKOFF_CAP_MS);
        last = ms;
    }
    assert_int_equal(backoff_ms(40), BACKOFF_CAP_MS);
    assert_int_equal(backoff_ms(0xFFFFFFFFu), BACKOFF_CAP_MS);
}

/* Each death adds to the streak; the wait grows with it until one is waited out. */
static void test_due_follows_the_streak(void **state)
{
    (void)state;
    assert_int_equal(backoff_due(&b), 0);
    backoff_death(&b, NULL, "x");
    assert_int_equal(b.streak, 1);
    assert_int_equal(backoff_due(&b), 0);
    backoff_death(&b, NULL, "x");
    assert_int_equal(backoff_due(&b), BACKOFF_BASE_MS);
    backoff_begin(&b);
    assert_true(b.active);
    backoff_end(&b);
    assert_false(b.active);
    assert_int_equal(backoff_due(&b), 0); /* this streak's wait is over */
    backoff_death(&b, NULL, "x");
    assert_int_equal(backoff_due(&b), 2 * BACKOFF_BASE_MS);
}

static void test_an_answer_ends_the_streak(void **state)
{
    (void)state;
    backoff_death(&b, "f", "died");
    backoff_death(&b, "f", "died");
    backoff_answered(&b, "f");
    assert_int_equal(b.streak, 0);
    backoff_begin(&b);
    assert_null(backoff_storm_error(&b, "f"));
}

/* A storm answers at once only during back-off, and only at STORM_ANSWER_AT deaths. */
static void test_storm_error_during_backoff(void **state)
{
    (void)state;
    backoff_death(&b, "f", "worker exited with status 1");
    backoff_begin(&b);
    assert_null(backoff_storm_error(&b, "f")); /* one death is not a storm */
    backoff_end(&b);
    backoff_death(&b, "f", "worker exited with status 2");
    assert_null(backoff_storm_error(&b, "f")); /* not waiting: the request waits too */
    backoff_begin(&b);
    assert_string_equal(backoff_storm_error(&b, "f"), "worker exited with status 2");
    assert_null(backoff_storm_error(&b, "g")); /* other functions wait for a worker */
}

static void test_storms_are_per_function(void **state)
{
    (void)state;
    for (int i = 0; i < STORM_ANSWER_AT; i++) {
        backoff_death(&b, "a", "a died");
        backoff_death(&b, "", "v5 died"); /* "" is a function too */
    }
    backoff_death(&b, "b", "b died");
    backoff_begin(&b);
    assert_string_equal(backoff_storm_error(&b, "a"), "a died");
    assert_string_equal(backoff_storm_error(&b, ""), "v5 died");
    assert_null(backoff_storm_error(&b, "b"));
    backoff_answered(&b, "a");
    assert_null(backoff_storm_error(&b, "a"));
    assert_string_equal(backoff_storm_error(&b, ""), "v5 died");
}

/* A death with no function running counts toward the streak, not toward a storm. */
static void test_death_without_target(void **state)
{
    (void)state;
    backoff_death(&b, NULL, NULL);
    backoff_death(&b, NULL, NULL);
    assert_int_equal(b.streak, 2);
    for (unsigned i = 0; i < STORM_TARGETS; i++)
        assert_int_equal(b.storms[i].deaths, 0);
}

/* Past STORM_TARGETS functions, the oldest slot is taken over. */
static void test_storm_slots_wrap(void **state)
{
    (void)state;
    char name[16];
    for (unsigned i = 0; i <= STORM_TARGETS; i++) {
        snprintf(name, sizeof(name), "f%u", i);
        backoff_death(&b, name, name);
        backoff_death(&b, name, name);
    }
    backoff_begin(&b);
    assert_null(backoff_storm_error(&b, "f0"));
    snprintf(name, sizeof(name), "f%u", STORM_TARGETS);
    assert_string_equal(backoff_storm_error(&b, name), name);
    assert_string_equal(backoff_storm_error(&b, "f1"), "f1");
}

/* Names and errors longer than their slots are cut, not overrun. */
static void test_long_texts_are_cut(void **state)
{
    (void)state;
    char target[JOB_TARGET_MAX * 2], error[ERROR_TEXT_MAX * 2];
    memset(target, 't', sizeof(target) - 1);
    target[sizeof(target) - 1] = '\0';
    memset(error, 'e', sizeof(error) - 1);
    error[sizeof(error) - 1] = '\0';
    backoff_death(&b, target, error);
    backoff_death(&b, target, error);
    assert_int_equal(strlen(b.storms[0].target), JOB_TARGET_MAX - 1);
    assert_int_equal(strlen(b.storms[0].error), ERROR_TEXT_MAX - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_backoff_ms_doubles_to_the_cap, setup),
        cmocka_unit_test_setup(test_due_follows_the_streak, setup),
        cmocka_unit_test_setup(test_an_answer_ends_the_streak, setup),
        cmocka_unit_test_setup(test_storm_error_during_backoff, setup),
        cmocka_unit_test_setup(test_storms_are_per_function, setup),
        cmocka_unit_test_setup(test_death_without_target, setup),
        cmocka_unit_test_setup(test_storm_slots_wrap, setup),
        cmocka_unit_test_setup(test_long_texts_are_cut, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
