/* admit.c -- whether a complete execution request becomes a job, and with which timeout
 * and target: the one rule http.c and run.c both call (see admit.h). */
#include "master/admit.h"

#include <string.h>

void admit_json(const serve_config_t *cfg, body_check_t *check, size_t body_len, admit_t *out)
{
    memset(out, 0, sizeof(*out));
    if (body_len == 0) {
        out->status = 500;
        out->message = "no data received";
        return;
    }
    if (check == NULL) {
        out->status = 500;
        out->message = "out of memory for the JSON parser";
        return;
    }
    bool has_timeout = false;
    double timeout = 0;
    const char *error = NULL;
    if (body_check_finish(check, &has_timeout, &timeout, &error) < 0) {
        out->status = 400;
        out->message = error;
        return;
    }
    if (cfg->contract == CONTRACT_V2)
        has_timeout = false; /* v2 bodies carry no timeout: the executor keeps time */
    out->timeout = job_timeout(has_timeout, timeout, cfg);
    body_check_target(check, out->target, sizeof(out->target));
}

void admit_v5(const serve_config_t *cfg, bool has_timeout, double timeout, admit_t *out)
{
    memset(out, 0, sizeof(*out));
    out->timeout = job_timeout(has_timeout, timeout, cfg);
}
