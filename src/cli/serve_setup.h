/* serve_setup.h -- what `serve`, `launch` and `run` do to a config after parsing:
 * resolve the code folder, check its runtime-env, pick the entry point, fill defaults. */
#ifndef PYRT_SERVE_SETUP_H
#define PYRT_SERVE_SETUP_H

#include <limits.h>
#include <stddef.h>

#include "master/config.h"

/* `code_dir` receives the resolved folder and cfg->code_dir points at it. `contract`
 * is --contract / PYRT_CONTRACT (NULL: chosen from the environment, cli/contract.h);
 * `entrypoint` is --entrypoint / ENTRYPOINT_NAME (NULL: the executors' variables,
 * then main.py, then index.py). A default_timeout of 0 means "not given": v2's is
 * --max-timeout (its executor keeps time), the others' 15 s. 0, or -1 with a message
 * in err. */
int serve_config_finish(serve_config_t *cfg, const char *contract, const char *entrypoint,
                        char code_dir[PATH_MAX], char *err, size_t errlen);

#define SERVE_DEFAULT_TIMEOUT 15.0
/* --async-slots in v5 and v2: open-runtimes' aiohttp workers take every request that
 * comes, and gunicorn's nominal cap for such workers (worker_connections) is 1000. */
#define SERVE_DEFAULT_ASYNC_SLOTS 1000

/* The options every serving command shares about contracts, for its option table. */
#define SERVE_CONTRACT_OPTS(contract, cfg)                                                         \
    {"contract",                                                                                   \
     0,                                                                                            \
     OPT_STRING,                                                                                   \
     (contract),                                                                                   \
     "PYRT_CONTRACT",                                                                              \
     0,                                                                                            \
     0,                                                                                            \
     "seed|v5|v2",                                                                                 \
     "executor contract (default: v5 when OPEN_RUNTIMES_SECRET is set, else seed)"},               \
        {"logs-dir",                                                                               \
         0,                                                                                        \
         OPT_STRING,                                                                               \
         &(cfg)->logs_dir,                                                                         \
         "PYRT_LOGS_DIR",                                                                          \
         0,                                                                                        \
         0,                                                                                        \
         "DIR",                                                                                    \
         "v5: folder of the per-execution log files (default /mnt/logs)"},                         \
    {                                                                                              \
        "telemetry-file", 0, OPT_STRING, &(cfg)->telemetry_file, "PYRT_TELEMETRY_FILE", 0, 0,      \
            "FILE", "v5: what GET /__opr/timings answers (default /mnt/telemetry/timings.txt)"     \
    }

#endif
