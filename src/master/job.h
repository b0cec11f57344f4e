/* job.h -- one execution, from the complete request to the answer.
 *
 * Ownership: a job belongs to the pool from pool_submit() until pool answers it, then
 * it is freed (job_free). The connection only points at it; when the client leaves,
 * http.c calls pool_job_detach(), which clears job->conn so the answer is dropped. The
 * job's deadline timer is a libuv handle, so the memory goes in the timer's close
 * callback: nothing may touch a job after job_free(). */
#ifndef PYRT_JOB_H
#define PYRT_JOB_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "master/reqid.h"

typedef struct conn conn_t;
typedef struct worker worker_t;

typedef struct job {
    conn_t *conn;     /* NULL once the client has gone */
    worker_t *worker; /* set while a worker runs it */
    char id[REQID_MAX + 1];
    buf_t body;       /* the raw JSON; moves to the worker's write when sent */
    double timeout;   /* effective, in seconds */
    char target[520]; /* "PATH\nFILE" from the body (body_check_target) */
    uv_timer_t deadline;
    bool queued;
    struct job *prev, *next; /* queue links */
} job_t;

job_t *job_new(uv_loop_t *loop, conn_t *conn, const char *id, double timeout);
void job_free(job_t *job);

#endif
