/* proctree.h -- killing a worker together with every process it started.
 *
 * A process group is not enough (setsid leaves it). Each worker is a child subreaper,
 * so everything its executions start stays below it, however it detaches; this walks
 * /proc for that tree. (A PID namespace per worker would let the kernel do it, but
 * makes the worker PID 1, which ignores the signals it sends itself, and shows user
 * code PIDs that mean nothing outside: not what a function's author expects.) */
#ifndef PYRT_PROCTREE_H
#define PYRT_PROCTREE_H

#include <sys/types.h>

/* SIGKILLs every descendant of root (repeating while new ones appear), then root.
 * Returns how many descendants were signalled. */
int proctree_kill(pid_t root);

/* SIGKILLs every child of this process not in `keep` (and their trees): orphans of a
 * worker that died, which the kernel handed to us as the nearest subreaper. */
int proctree_kill_orphans(const pid_t *keep, int nkeep);

#endif
