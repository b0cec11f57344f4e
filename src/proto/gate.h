/* gate.h -- who decides a prefetched execution: the worker that starts it, or the
 * master that takes it back.
 *
 * Under load the master sends a busy worker its next CALL before the current one has
 * answered (prefetch), so that the worker goes from one execution to the next without
 * sleeping and being woken -- on this kind of machine a wake-up costs more than the
 * frame. A prefetched execution may then have to be taken back before it starts: its
 * deadline passes while it waits, or another worker falls idle and should run it.
 *
 * The two sides settle that race in a page they share (a memfd the master maps and
 * hands to the worker at spawn): one 64-bit slot per CALL, indexed by its seq (CALLs
 * of a worker are numbered from 1), holding `seq << 2 | state`. The master opens the
 * slot (PENDING) before it sends the CALL. Before running it, the worker moves it
 * PENDING -> STARTED; to take it back, the master moves it PENDING -> CANCELLED. One
 * compare-and-swap decides; the other side sees the outcome. No syscall, no round
 * trip, and slots do not depend on one another, so order does not matter.
 *
 * Only CALLs that may be taken back use a slot: the one a worker runs and the one
 * prefetched behind it, so slots are never reused while in use. Tasks (--async-slots)
 * have none: they are never taken back.
 *
 * User code in the worker can write the page: the master trusts a slot only about that
 * worker's own executions and never follows anything in it. */
#ifndef PYRT_GATE_H
#define PYRT_GATE_H

#include <stdatomic.h>
#include <stdint.h>

#define GATE_SIZE 4096
#define GATE_SLOTS (GATE_SIZE / sizeof(uint64_t) - 1)

/* `running`: the seq of the task whose code runs on a worker's event loop now (0:
 * none), written by the worker around each step of a task (--async-slots). When the
 * loop stops turning, it names the execution that blocked it -- as the worker says:
 * the master uses it only to word the answers of that worker's own executions. */
typedef struct gate {
    _Atomic uint64_t slot[GATE_SLOTS];
    _Atomic uint64_t running;
} gate_t;

_Static_assert(sizeof(gate_t) == GATE_SIZE, "the gate is one page");

enum { GATE_PENDING = 0, GATE_RUNNING = 1, GATE_TAKEN_BACK = 2 };

typedef enum gate_outcome {
    GATE_WON,       /* this side decided seq */
    GATE_STARTED,   /* the worker had already started seq */
    GATE_CANCELLED, /* the master had already taken seq back */
    GATE_CONFUSED,  /* the slot is not about seq: not a state we made */
} gate_outcome_t;

/* The master, before sending CALL seq. */
static inline void gate_open(gate_t *gate, uint32_t seq)
{
    atomic_store_explicit(&gate->slot[seq % GATE_SLOTS], (uint64_t)seq << 2 | GATE_PENDING,
                          memory_order_release);
}

static inline gate_outcome_t gate_decide(gate_t *gate, uint32_t seq, uint64_t state)
{
    uint64_t want = (uint64_t)seq << 2 | GATE_PENDING;
    if (atomic_compare_exchange_strong_explicit(&gate->slot[seq % GATE_SLOTS], &want,
                                                (uint64_t)seq << 2 | state, memory_order_acq_rel,
                                                memory_order_acquire))
        return GATE_WON;
    if (want >> 2 != seq)
        return GATE_CONFUSED;
    switch (want & 3) {
    case GATE_RUNNING: return GATE_STARTED;
    case GATE_TAKEN_BACK: return GATE_CANCELLED;
    default: return GATE_CONFUSED;
    }
}

/* The worker, before running CALL seq. */
static inline gate_outcome_t gate_claim(gate_t *gate, uint32_t seq)
{
    return gate_decide(gate, seq, GATE_RUNNING);
}

/* The master, taking back a CALL it sent but the worker may not have started. */
static inline gate_outcome_t gate_cancel(gate_t *gate, uint32_t seq)
{
    return gate_decide(gate, seq, GATE_TAKEN_BACK);
}

#endif
