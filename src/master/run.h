/* run.h -- one execution without HTTP, for `pyrt run`: the same zygote, worker, frames,
 * deadline and limits as the server, with the answer handed back instead of written
 * to a socket. No key is needed (nothing listens); if one is in the environment, it is
 * taken out as the server does, so user code never sees it. */
#ifndef PYRT_RUN_H
#define PYRT_RUN_H

#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"
#include "master/config.h"
#include "master/reqid.h"

typedef struct run_answer {
    int status;
    buf_t headers; /* "Name: value\r\n" lines */
    buf_t body;
    char id[REQID_MAX + 1];
    pid_t worker_pid;
    double ms; /* from submitting the execution to its answer */
} run_answer_t;

/* The execution to run, as the command line gave it. */
typedef struct run_request {
    buf_t body;     /* seed, v2: the JSON body; v5: the raw request body */
    buf_t head;     /* v5: method, target and headers, encoded as http.c encodes them */
    double timeout; /* v5: seconds (0: the default); seed and v2 put it in the body */
} run_request_t;

/* Runs the execution `req` once and fills `out` (which the caller frees with
 * run_answer_free). 0, or -1 with err when it cannot start at all. */
int master_run_once(const serve_config_t *cfg, const run_request_t *req, run_answer_t *out,
                    char *err, size_t errlen);
void run_answer_free(run_answer_t *a);

#endif
