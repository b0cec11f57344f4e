/* admit.h -- the rule a complete execution request passes before it becomes a job, one
 * implementation for both of the master's clients: an HTTP request (http.c) and
 * `pyrt run` (run.c).
 *
 * Seed and v2: a body must have arrived, be the JSON object body.c accepts, and its
 * "timeout" (seed only: v2 bodies carry none, the executor keeps time) sets the job's;
 * the body also names the function it runs (the job's target). v5: the timeout the
 * request gave, if any. Either way the timeout is capped as job_timeout() says.
 * What is refused is said as a status and a message; each client writes the refusal
 * its own way (an HTTP answer, or `pyrt run`'s). */
#ifndef PYRT_ADMIT_H
#define PYRT_ADMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "master/body.h"
#include "master/config.h"
#include "master/job.h"

typedef struct admit {
    int status;                  /* 0: admitted; else the refusal's status (400, 500) */
    const char *message;         /* the refusal's message: static, or owned by the body check */
    double timeout;              /* admitted: the job's timeout in seconds */
    char target[JOB_TARGET_MAX]; /* admitted, seed and v2: "PATH\nFILE" (body_check_target) */
} admit_t;

/* Seed and v2: `check` has been fed the whole body, `body_len` bytes (NULL: it could
 * not be made, out of memory). The message, when refused, lives as long as `check`. */
void admit_json(const serve_config_t *cfg, body_check_t *check, size_t body_len, admit_t *out);

/* v5: `has_timeout` when the request gave a timeout (already checked > 0). Always
 * admitted. */
void admit_v5(const serve_config_t *cfg, bool has_timeout, double timeout, admit_t *out);

#endif
