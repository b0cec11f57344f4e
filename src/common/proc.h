/* proc.h -- running a helper program (python, pip) and waiting for it. */
#ifndef PYRT_PROC_H
#define PYRT_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"

#define PROC_SAME_USER ((uid_t)-1)

/* Runs argv[0] (a path) with argv in cwd (NULL: ours) and waits. With `capture`, its
 * stdout and stderr are collected there (the last 1 MiB); without, they are ours. With
 * uid != PROC_SAME_USER it runs as uid/gid. Returns its exit status, 128 + the signal
 * that killed it, or -1 with err when it could not be started. */
int proc_run(char *const argv[], const char *cwd, buf_t *capture, uid_t uid, gid_t gid,
             char *err, size_t errlen);

/* A copy of the environment as it is now (NULL-terminated, each string malloc'd): what
 * the master gives the zygote once the key is out of it. */
char **proc_copy_environ(void);

#endif
