/* job.c -- one execution's memory (see job.h). */
#include "master/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/xalloc.h"

double job_timeout(bool given, double seconds, const serve_config_t *cfg)
{
    double t = given ? seconds : cfg->default_timeout;
    return t > cfg->max_timeout ? cfg->max_timeout : t;
}

job_t *job_new(uv_loop_t *loop, void *client, job_answer_fn answer, const char *id,
               double timeout)
{
    job_t *job = xcalloc(1, sizeof(*job));
    job->client = client;
    job->answer = answer;
    snprintf(job->id, sizeof(job->id), "%s", id);
    buf_init(&job->body);
    job->timeout = timeout;
    uv_timer_init(loop, &job->deadline);
    job->deadline.data = job;
    return job;
}

static void on_timer_closed(uv_handle_t *handle)
{
    job_t *job = handle->data;
    buf_free(&job->body);
    free(job);
}

void job_free(job_t *job)
{
    if (job == NULL)
        return;
    uv_timer_stop(&job->deadline);
    uv_close((uv_handle_t *)&job->deadline, on_timer_closed);
}

void job_answer(job_t *job, const job_answer_t *answer)
{
    if (job->client)
        job->answer(job, answer);
}

void job_answer_error(job_t *job, int status, const char *message, const char *outcome,
                      pid_t worker_pid)
{
    static const char json_type[] = "Content-Type: application/json\r\n";
    if (job->client == NULL)
        return;
    buf_t body = BUF_INIT;
    json_error_body(&body, status, message);
    job_answer_t a = {status, json_type, sizeof(json_type) - 1, body.data, body.len, outcome,
                      worker_pid};
    job->answer(job, &a);
    buf_free(&body);
}
