/* tmpdir.h -- a worker's private TMPDIR, ready before any user code runs: no file of
 * the worker before it is there to see.
 *
 * In the per-server folder the master made (master/tmpdirs.h): with a uid of its own,
 * the worker's folder is the one named by its uid, which it empties (what the last
 * worker of that uid left) and closes to others (0700); nobody else can enter it. Without,
 * it makes a new folder in TMPDIR_SHARED_NAME, holds a lock on it as long as it lives,
 * and removes the folders of workers gone before it (no lock held). Either way, the
 * removal runs in the new worker, never in the master. */
#ifndef PYRT_WORKER_TMPDIR_H
#define PYRT_WORKER_TMPDIR_H

#include <stddef.h>
#include <sys/types.h>

/* In a new worker, after sandbox_worker (as its own uid, when `own_uid` is not 0):
 * its folder in `base`, empty, 0700, written to path. 0, or -1 with err: no user code
 * may run then (it could see another worker's files). */
int worker_tmpdir_prepare(const char *base, uid_t own_uid, char *path, size_t pathlen, char *err,
                          size_t errlen);

#endif
