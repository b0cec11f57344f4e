/* proctree.h -- killing a worker together with every process it started, when it has
 * neither a uid of its own (else master/uidslot.h does it at once) nor a PID namespace of
 * its own (else its death kills the namespace: worker/sandbox.h) -- where the kernel
 * refuses user namespaces, or --no-worker-namespaces.
 *
 * A process group is not enough (setsid leaves it). Each worker is a child subreaper,
 * so everything its executions start stays below it, however it detaches; this walks
 * /proc for that tree, stopping it first (a stopped process cannot fork) and then
 * killing it. */
#ifndef PYRT_PROCTREE_H
#define PYRT_PROCTREE_H

#include <sys/types.h>

/* SIGSTOPs every descendant of root until none runs, SIGKILLs them, then root.
 * Returns how many descendants were killed. */
int proctree_kill(pid_t root);

/* proctree_kill(root) in a child process of ours (a walker), so that a tree that keeps
 * changing (a pid-hopper) costs the caller's loop a fork, not seconds of /proc walks.
 * The walker is reaped like any child, dies with us, and proctree_kill_orphans spares
 * it. If it cannot be forked, the walk runs here. */
void proctree_kill_async(pid_t root);

/* SIGKILLs every child of this process not in `keep` nor a walker (and their trees):
 * orphans of a worker that died, which the kernel handed to us as the nearest
 * subreaper. Here, in a few rounds: a walker could not know the workers spawned while
 * it runs, and would take them for orphans. Returns how many it signalled. */
int proctree_kill_orphans(const pid_t *keep, int nkeep);

#endif
