/* job.c -- one execution's memory (see job.h). */
#include "master/job.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

job_t *job_new(uv_loop_t *loop, conn_t *conn, const char *id, double timeout)
{
    job_t *job = xcalloc(1, sizeof(*job));
    job->conn = conn;
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
