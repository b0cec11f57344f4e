/* proc.h -- running a helper program (python, pip) and waiting for it. */
#ifndef PYRT_PROC_H
#define PYRT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"

#define PROC_SAME_USER ((uid_t)-1)

/* Runs argv[0] (a path) with argv in cwd (NULL: ours) and waits. With `capture`, its
 * stdout and stderr are collected there (the last 1 MiB); without, they are ours. With
 * uid != PROC_SAME_USER it runs as uid/gid. Returns its exit status, 128 + the signal
 * that killed it, or -1 with err when it could not be started. */
int proc_run(char *const argv[], const char *cwd, buf_t *capture, uid_t uid, gid_t gid, char *err,
             size_t errlen);

/* Who runs a helper, for proc_run_as. Only root can switch. */
typedef struct proc_user {
    uid_t uid; /* PROC_SAME_USER: no switch (the other fields are ignored) */
    gid_t gid;
    /* Keep one capability across the switch (an ambient one): CAP_DAC_READ_SEARCH, so
     * that the program reads and searches any folder -- a function folder only root may
     * enter -- while it writes only where its uid may; where the capability set has no
     * CAP_DAC_READ_SEARCH (containers' defaults), CAP_DAC_OVERRIDE, which also writes
     * past file modes. Either way it is not root and has no other capability. */
    bool read_all;
    /* "NAME=value" strings added to its environment (HOME for a user with none, say),
     * NULL-terminated, or NULL. */
    char *const *env;
} proc_user_t;

/* proc_run, as `user`. */
int proc_run_as(char *const argv[], const char *cwd, buf_t *capture, const proc_user_t *user,
                char *err, size_t errlen);

/* The capability read_all keeps (CAP_DAC_READ_SEARCH or CAP_DAC_OVERRIDE: the first this
 * process has and may pass on), or -1 when it has neither. */
int proc_read_all_capability(void);

/* Can `user` open `path` with `mode` (access(2)'s R_OK, W_OK, X_OK)? Asked in a child
 * that has switched to it, so that every folder on the way counts -- with its effective
 * ids and capabilities (AT_EACCESS: access(2) drops capabilities for a user not root). */
bool proc_user_can(const proc_user_t *user, const char *path, int mode);

/* A copy of the environment as it is now (NULL-terminated, each string malloc'd): what
 * the master gives the zygote once the key is out of it. */
char **proc_copy_environ(void);

#endif
