/* master.h -- the master process: listener, signals, shutdown. No Python in it. */
#ifndef PYRT_MASTER_H
#define PYRT_MASTER_H

#include <stddef.h>

#include "master/config.h"

/* Takes the key, listens, starts the pool and runs until SIGTERM/SIGINT has drained
 * everything. 0 on a clean stop; -1 with err when it cannot start. */
int master_run(serve_config_t *cfg, char *err, size_t errlen);

#endif
