/* worker.h -- a worker's loop: READY, then for each CALL frame runtime.execute() and a
 * RESULT frame, until the master closes the channel. */
#ifndef PYRT_WORKER_H
#define PYRT_WORKER_H

/* Runs on the channel fd, with the GIL held on entry; never returns. */
void worker_run(int chan_fd) __attribute__((noreturn));

#endif
