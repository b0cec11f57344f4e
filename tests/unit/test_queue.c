/* test_queue.c -- the FIFO of jobs waiting for a worker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <string.h>
#include <uv.h>

#include "master/job.h"
#include "master/queue.h"

#define NJOBS 5

static job_t jobs[NJOBS];
static job_queue_t q;

static int setup(void **state)
{
    (void)state;
    memset(jobs, 0, sizeof(jobs));
    queue_init(&q);
    return 0;
}

static void push_all(void)
{
    for (int i = 0; i < NJOBS; i++)
        queue_push(&q, &jobs[i]);
}

/* Pops everything and checks it comes out as the jobs at `want` indexes, in order. */
static void expect_order(const int *want, int n)
{
    assert_int_equal(q.length, (size_t)n);
    for (int i = 0; i < n; i++) {
        job_t *j = queue_pop(&q);
        assert_ptr_equal(j, &jobs[want[i]]);
        assert_false(j->queued);
        assert_int_equal(q.length, (size_t)(n - i - 1));
    }
    assert_null(queue_pop(&q));
    assert_null(q.head);
    assert_null(q.tail);
}

static void test_init_empty(void **state)
{
    (void)state;
    q.head = &jobs[0];
    q.tail = &jobs[1];
    q.length = 9;
    queue_init(&q);
    assert_null(q.head);
    assert_null(q.tail);
    assert_int_equal(q.length, 0);
}

static void test_pop_empty(void **state)
{
    (void)state;
    assert_null(queue_pop(&q));
    assert_int_equal(q.length, 0);
}

static void test_push_sets_queued_and_length(void **state)
{
    (void)state;
    assert_false(jobs[0].queued);
    queue_push(&q, &jobs[0]);
    assert_true(jobs[0].queued);
    assert_int_equal(q.length, 1);
    assert_ptr_equal(q.head, &jobs[0]);
    assert_ptr_equal(q.tail, &jobs[0]);
    queue_push(&q, &jobs[1]);
    assert_int_equal(q.length, 2);
    assert_ptr_equal(q.head, &jobs[0]);
    assert_ptr_equal(q.tail, &jobs[1]);
}

static void test_fifo_order(void **state)
{
    (void)state;
    push_all();
    const int want[] = {0, 1, 2, 3, 4};
    expect_order(want, 5);
}

static void test_remove_middle(void **state)
{
    (void)state;
    push_all();
    queue_remove(&q, &jobs[2]);
    assert_false(jobs[2].queued);
    assert_null(jobs[2].prev);
    assert_null(jobs[2].next);
    assert_ptr_equal(jobs[1].next, &jobs[3]);
    assert_ptr_equal(jobs[3].prev, &jobs[1]);
    const int want[] = {0, 1, 3, 4};
    expect_order(want, 4);
}

static void test_remove_head(void **state)
{
    (void)state;
    push_all();
    queue_remove(&q, &jobs[0]);
    assert_ptr_equal(q.head, &jobs[1]);
    assert_null(jobs[1].prev);
    const int want[] = {1, 2, 3, 4};
    expect_order(want, 4);
}

static void test_remove_tail(void **state)
{
    (void)state;
    push_all();
    queue_remove(&q, &jobs[4]);
    assert_ptr_equal(q.tail, &jobs[3]);
    assert_null(jobs[3].next);
    const int want[] = {0, 1, 2, 3};
    expect_order(want, 4);
}

static void test_remove_only_element(void **state)
{
    (void)state;
    queue_push(&q, &jobs[0]);
    queue_remove(&q, &jobs[0]);
    assert_int_equal(q.length, 0);
    assert_null(q.head);
    assert_null(q.tail);
    assert_false(jobs[0].queued);
}

static void test_remove_not_queued_is_noop(void **state)
{
    (void)state;
    queue_push(&q, &jobs[0]);
    queue_push(&q, &jobs[1]);
    queue_remove(&q, &jobs[3]); /* never pushed */
    assert_int_equal(q.length, 2);
    job_t *popped = queue_pop(&q);
    assert_ptr_equal(popped, &jobs[0]);
    queue_remove(&q, popped); /* already popped: removing again changes nothing */
    assert_int_equal(q.length, 1);
    assert_ptr_equal(q.head, &jobs[1]);
    assert_ptr_equal(q.tail, &jobs[1]);
}

static void test_remove_twice(void **state)
{
    (void)state;
    push_all();
    queue_remove(&q, &jobs[2]);
    queue_remove(&q, &jobs[2]);
    assert_int_equal(q.length, 4);
    const int want[] = {0, 1, 3, 4};
    expect_order(want, 4);
}

static void test_repush_after_pop_goes_to_tail(void **state)
{
    (void)state;
    push_all();
    job_t *j = queue_pop(&q);
    assert_ptr_equal(j, &jobs[0]);
    queue_push(&q, j);
    assert_true(j->queued);
    const int want[] = {1, 2, 3, 4, 0};
    expect_order(want, 5);
}

static void test_interleaved(void **state)
{
    (void)state;
    queue_push(&q, &jobs[0]);
    queue_push(&q, &jobs[1]);
    assert_ptr_equal(queue_pop(&q), &jobs[0]);
    queue_push(&q, &jobs[2]);
    queue_remove(&q, &jobs[1]);
    queue_push(&q, &jobs[3]);
    const int want[] = {2, 3};
    expect_order(want, 2);
}

static void test_remove_all_from_middle_out(void **state)
{
    (void)state;
    push_all();
    const int order[] = {2, 1, 3, 0, 4};
    for (int i = 0; i < NJOBS; i++) {
        queue_remove(&q, &jobs[order[i]]);
        assert_int_equal(q.length, (size_t)(NJOBS - i - 1));
    }
    assert_null(q.head);
    assert_null(q.tail);
    assert_null(queue_pop(&q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_init_empty, setup),
        cmocka_unit_test_setup(test_pop_empty, setup),
        cmocka_unit_test_setup(test_push_sets_queued_and_length, setup),
        cmocka_unit_test_setup(test_fifo_order, setup),
        cmocka_unit_test_setup(test_remove_middle, setup),
        cmocka_unit_test_setup(test_remove_head, setup),
        cmocka_unit_test_setup(test_remove_tail, setup),
        cmocka_unit_test_setup(test_remove_only_element, setup),
        cmocka_unit_test_setup(test_remove_not_queued_is_noop, setup),
        cmocka_unit_test_setup(test_remove_twice, setup),
        cmocka_unit_test_setup(test_repush_after_pop_goes_to_tail, setup),
        cmocka_unit_test_setup(test_interleaved, setup),
        cmocka_unit_test_setup(test_remove_all_from_middle_out, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
