/* test_gate.c -- the slots on which a worker and the master settle who decides a
 * prefetched execution (proto/gate.h): each seq is decided once, by one side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first: its own block, so that it stays last. */
#include <cmocka.h>

#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/gate.h"

static gate_t gate;

static int setup(void **state)
{
    (void)state;
    memset(&gate, 0, sizeof(gate));
    return 0;
}

static void test_claim_an_open_call(void **state)
{
    (void)state;
    gate_open(&gate, 1);
    assert_int_equal(gate_claim(&gate, 1), GATE_WON);
    assert_int_equal(gate_cancel(&gate, 1), GATE_STARTED);
    assert_int_equal(gate_claim(&gate, 1), GATE_STARTED); /* a second start is refused */
}

static void test_cancel_before_claim(void **state)
{
    (void)state;
    gate_open(&gate, 2);
    assert_int_equal(gate_cancel(&gate, 2), GATE_WON);
    assert_int_equal(gate_claim(&gate, 2), GATE_CANCELLED); /* the worker skips it */
    assert_int_equal(gate_cancel(&gate, 2), GATE_CANCELLED);
}

static void test_slots_do_not_depend_on_order(void **state)
{
    (void)state;
    /* 3 taken back, then 4 sent and 5 prefetched and taken back, before the worker
     * has even reached 3: each is decided on its own. */
    gate_open(&gate, 3);
    assert_int_equal(gate_cancel(&gate, 3), GATE_WON);
    gate_open(&gate, 4);
    gate_open(&gate, 5);
    assert_int_equal(gate_cancel(&gate, 5), GATE_WON);
    assert_int_equal(gate_claim(&gate, 3), GATE_CANCELLED);
    assert_int_equal(gate_claim(&gate, 4), GATE_WON);
    assert_int_equal(gate_claim(&gate, 5), GATE_CANCELLED);
}

static void test_a_slot_about_another_call_is_confused(void **state)
{
    (void)state;
    assert_int_equal(gate_claim(&gate, 6), GATE_CONFUSED); /* never opened */
    gate_open(&gate, 7);
    assert_int_equal(gate_claim(&gate, 7 + GATE_SLOTS), GATE_CONFUSED); /* same slot */
    atomic_store(&gate.slot[8 % GATE_SLOTS], (uint64_t)8 << 2 | 3);     /* user code's */
    assert_int_equal(gate_cancel(&gate, 8), GATE_CONFUSED);
    assert_int_equal(gate_claim(&gate, 7), GATE_WON);
}

/* Two processes on a shared page, as the master and a worker are: for each seq, the
 * worker claims while the master cancels; exactly one of them wins, and both agree. */
#define RACES 20000

static void test_race_across_processes(void **state)
{
    (void)state;
    size_t size = sizeof(gate_t) + RACES;
    uint8_t *page = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(page != MAP_FAILED);
    gate_t *g = (gate_t *)page;
    uint8_t *worker_won = page + sizeof(gate_t);
    uint32_t rounds = RACES / GATE_SLOTS, seq_end = rounds * GATE_SLOTS;
    int master_won = 0;
    for (uint32_t round = 0; round < rounds; round++) {
        uint32_t first = round * GATE_SLOTS + 1;
        for (uint32_t seq = first; seq < first + GATE_SLOTS; seq++)
            gate_open(g, seq);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (uint32_t seq = first; seq < first + GATE_SLOTS; seq++)
                worker_won[seq - 1] = gate_claim(g, seq) == GATE_WON;
            _exit(0);
        }
        for (uint32_t seq = first; seq < first + GATE_SLOTS; seq++) {
            gate_outcome_t o = gate_cancel(g, seq);
            assert_true(o == GATE_WON || o == GATE_STARTED);
            master_won += o == GATE_WON;
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    int total = 0;
    for (uint32_t i = 0; i < seq_end; i++)
        total += worker_won[i];
    assert_int_equal(total + master_won, (int)seq_end);
    munmap(page, size);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_claim_an_open_call, setup),
        cmocka_unit_test_setup(test_cancel_before_claim, setup),
        cmocka_unit_test_setup(test_slots_do_not_depend_on_order, setup),
        cmocka_unit_test_setup(test_a_slot_about_another_call_is_confused, setup),
        cmocka_unit_test(test_race_across_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
