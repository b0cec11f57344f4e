/* sandbox.h -- what the kernel enforces around user code: the zygote's and each worker's
 * uid, capabilities, no_new_privs and process cap, and the end of what an execution
 * leaves running.
 *
 * Started as root, pyrt gives each worker a uid of its own (the master picks it,
 * master/uidslot.c, and sends it with SPAWN). A worker then cannot signal, prlimit,
 * ptrace or read /proc of the master (root), the zygote (another uid) or a sibling
 * (another uid), and everything it starts carries its uid, so that one kill(-1) from
 * that uid ends all of it, atomically. Without root, workers share the master's uid:
 * see docs/operating.md for what holds then. */
#ifndef PYRT_SANDBOX_H
#define PYRT_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Processes (threads included) one worker's uid may have: a fork bomb stops here. */
#define SANDBOX_NPROC_MAX 256

/* In the zygote, before Python starts. Switches to uid:gid when `switch_user`; with
 * `keep_setid`, keeps CAP_SETUID and CAP_SETGID -- nothing else -- to give each worker
 * its uid, else no capability at all. The bounding set is emptied and no_new_privs set
 * either way, so nothing executed later can gain one. 0, or -1 with err. */
int sandbox_zygote(bool switch_user, uid_t uid, gid_t gid, bool keep_setid, char *err,
                   size_t errlen);

/* In a new worker, before any Python runs: becomes uid:gid (0: keeps the zygote's user),
 * the zygote's gid (so that a code folder --user's group may read stays readable),
 * drops every capability (checked), sets no_new_privs and, with a uid of its own, the
 * process cap, and kills whatever an earlier worker of that uid left. 0, or -1 with
 * err: the worker must not run user code then. */
int sandbox_worker(uid_t uid, gid_t gid, char *err, size_t errlen);

/* After an execution, before its answer leaves: every process it started is ended (so
 * nothing it left writes under the next request's id) and reaped. */
void sandbox_end_execution(void);

#endif
