/* tmpdirs.h -- the per-server folder that holds each worker's private TMPDIR: made at
 * start, removed with everything in it at exit.
 *
 * mkdtemp in the master's own TMPDIR (else /tmp), mode 0511 once filled: the master
 * (root, or pyrt's uid) owns it, workers may only pass through it. With a uid per
 * worker it holds one folder per uid of the range, 0700 and owned by that uid, which a
 * new worker of that uid empties before any user code runs (worker/tmpdir.c); else one
 * folder, TMPDIR_SHARED_NAME, owned by the workers' shared uid, where each worker makes
 * its own. The master never walks a worker's tree while it serves: workers empty their
 * own, and the removal at exit runs once the loop has ended. */
#ifndef PYRT_TMPDIRS_H
#define PYRT_TMPDIRS_H

#include "master/config.h"

/* Makes the folder for cfg's workers (cfg->worker_uid_base and cfg->workers final).
 * Its path (owned here until tmpdirs_remove), or NULL when it could not be made: a
 * warning then says why, and the workers keep the inherited TMPDIR, shared. */
const char *tmpdirs_create(const serve_config_t *cfg);

/* Removes the folder and everything in it (no symlink followed), if one was made. Call
 * it when nothing is served any more: a big tree delays the exit, not an answer. */
void tmpdirs_remove(void);

#endif
