/* sandbox.h -- what the kernel enforces around user code: the zygote's and each worker's
 * uid, capabilities, no_new_privs and process cap, and the end of what an execution
 * leaves running.
 *
 * Started as root, pyrt gives each worker a uid of its own (the master picks it,
 * master/uidslot.c, and sends it with SPAWN). A worker then cannot signal, prlimit,
 * ptrace or read /proc of the master (root), the zygote (another uid) or a sibling
 * (another uid), and everything it starts carries its uid, so that one kill(-1) from
 * that uid ends all of it, atomically. Without root (or with --worker-uid-base 0),
 * workers share one uid, and namespaces keep them apart where the kernel allows (below):
 * see docs/operating.md for what holds then. */
#ifndef PYRT_SANDBOX_H
#define PYRT_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Processes (threads included) one worker's uid may have: a fork bomb stops here. */
#define SANDBOX_NPROC_MAX 256

/* A worker's PID namespace numbers its processes below this (Linux >= 6.14 keeps pid_max
 * per PID namespace): the process cap where RLIMIT_NPROC has none, uid 0. The kernel's
 * least is 301, and past the top it reuses numbers from 300 up: SANDBOX_NPROC_MAX of
 * them. */
#define SANDBOX_PID_MAX (300 + SANDBOX_NPROC_MAX)

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

/* Where workers share one uid (no uid of their own), each is cloned into a user and a
 * PID namespace of its own (CLONE_NEWUSER | CLONE_NEWPID) when the kernel allows it. It
 * is PID 1 there, so the master, the zygote and its siblings have no pid it can name
 * (kill, prlimit, ptrace, pidfd_open by pid: ESRCH), a pidfd or /proc/PID directory of
 * theirs is refused to pidfd_send_signal (an ancestor namespace), and when it dies the
 * kernel kills everything in its namespace at once. */

/* In the zygote, before Python starts: clones a child into new user and PID namespaces
 * and has it do what a worker does there (sandbox_enter_namespaces, with the same
 * read_only_dir), so that a kernel or a seccomp profile that refuses any step is found
 * once, here. 0 when workers can have namespaces; else -1 with err saying why not. */
int sandbox_probe_namespaces(const char *read_only_dir, char *err, size_t errlen);

/* In a worker just cloned into new user and PID namespaces, first: a process group of its own
 * (a signal to its old process group would reach the zygote), only the zygote's uid and
 * gid mapped (outer_uid, outer_gid; setgroups denied first, as the kernel requires; uid
 * 0 stays unmapped: mapping it needs CAP_SETFCAP the zygote does not have), the process
 * caps (RLIMIT_NPROC, which Linux >= 5.14 counts per user namespace, and pid_max where
 * the kernel keeps it per PID namespace), no user namespace below it, and an empty
 * bounding set; and, unless read_only_dir is NULL, a mount namespace of its own where
 * that folder (the served one) is mounted read-only. sandbox_worker() then drops the
 * rest of the capabilities the namespace gave it. 0, or -1 with err. */
int sandbox_enter_namespaces(uid_t outer_uid, gid_t outer_gid, const char *read_only_dir, char *err,
                             size_t errlen);

/* After an execution, before its answer leaves: every process it started is ended (so
 * nothing it left writes under the next request's id) and reaped. */
void sandbox_end_execution(void);

#endif
