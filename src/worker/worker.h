/* worker.h -- a worker's loop: READY, then for each CALL frame runtime.execute() and a
 * RESULT frame, until the master closes the channel (or a RESULT asks for a
 * replacement). */
#ifndef PYRT_WORKER_H
#define PYRT_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/gate.h"

/* --max-memory: an execution may allocate about `mib` MiB beyond the address space its
 * worker holds when it starts. Enforced with RLIMIT_AS, set before each execution:
 * soft = current + mib, hard = (at the worker's start) + 2 * mib, so that user code can
 * raise its soft limit only that far. A worker whose headroom has shrunk below mib, or
 * that hit MemoryError, asks to be replaced after answering. 0: no limit. Call before
 * worker_run, after dropping privileges. 0, or -1 with errno. */
int worker_limit_memory(long mib);

/* --max-body: a larger response body is not sent; a 500 saying so is. */
void worker_limit_body(size_t bytes);

/* The built-in module `_pyrt_worker` (its log() sends context.log lines to the
 * master), registered with Python before it starts (pyembed.c). */
struct _object *worker_module_init(void);

/* A worker that starts tasks (--async-slots): its memory cap is for all of them at once
 * (soft = hard), and after each answer it asks whether it still has room for another
 * execution's allowance. */
void worker_limit_tasks(void);
bool worker_memory_short(void);

/* Runs on the channel fd, with the GIL held on entry; never returns. `gate` is the
 * page shared with the master (proto/gate.h); `pid` the worker's as the master knows it
 * (not getpid() in a PID namespace of its own), sent with READY. */
void worker_run(int chan_fd, gate_t *gate, pid_t pid) __attribute__((noreturn));

#endif
