/* uidslot.h -- a uid of its own for each worker, and the end of everything a uid runs.
 *
 * Started as root, the master gives each worker a uid from [base + 1, base + count]
 * (base itself is the zygote's when there is no --user). A worker and all it starts
 * carry that uid and no capability (worker/sandbox.c), so that:
 *   - it cannot signal, prlimit, ptrace or read /proc of the master, the zygote or a
 *     sibling: each has another uid;
 *   - one kill(-1) sent from that uid ends every process it has, atomically: the kernel
 *     holds the task list while it signals, and a fork in flight fails. No /proc walk.
 * A uid goes back to the free list only after the worker's exit, once that kill ran. */
#ifndef PYRT_UIDSLOT_H
#define PYRT_UIDSLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define UIDSLOT_DEFAULT_BASE 50000 /* below 65536: mapped in a rootless container too */

/* How many worker uids `workers` workers need: each live one, and as many being
 * replaced (a dying worker keeps its uid until it exited). */
unsigned uidslot_count(long workers);

/* Reserves [*base, *base + count] for this server: mapped in this user namespace, no
 * account's uid (a worker with it could reach that account's processes and files), and
 * no other pyrt's -- two servers sharing a uid would kill each other's workers. The
 * reservation is a lock (flock) on one file per UIDSLOT_UNIT uids in UIDSLOT_LOCK_DIR,
 * held until this process exits. With `fixed`, *base is the one given; else the first
 * free range from *base up is taken and *base says which. 0, or -1 with err. */
int uidslot_reserve(long *base, unsigned count, bool fixed, char *err, size_t errlen);

#define UIDSLOT_UNIT 32                   /* uids one lock file reserves */
#define UIDSLOT_LOCK_DIR "/run/pyrt-uids" /* root's: 0700 */

/* Starts handing out uids above base (0: workers share the zygote's uid, and every
 * call below does nothing). */
void uidslot_init(long base, unsigned count);
bool uidslot_enabled(void);

/* A free uid, marked taken; 0 when none is free. */
uid_t uidslot_take(void);
void uidslot_release(uid_t uid);

/* SIGKILLs every process whose uid is `uid`, from a short-lived child running as that
 * uid (kill(-1) from it), and waits for that child: microseconds, whatever the uid runs.
 * 0, or -1 with errno. */
int uidslot_kill(uid_t uid);

#endif
