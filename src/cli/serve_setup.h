/* serve_setup.h -- what `serve`, `launch` and `run` do to a config after parsing:
 * resolve the code folder, check its runtime-env, pick the entry point, fill defaults. */
#ifndef PYRT_SERVE_SETUP_H
#define PYRT_SERVE_SETUP_H

#include <limits.h>
#include <stddef.h>

#include "master/config.h"

/* `code_dir` receives the resolved folder and cfg->code_dir points at it. 0, or -1
 * with a message in err. */
int serve_config_finish(serve_config_t *cfg, const char *entrypoint, char code_dir[PATH_MAX],
                        char *err, size_t errlen);

#endif
