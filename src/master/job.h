/* job.h -- one execution, from the complete request to the answer.
 *
 * A job comes from a client -- an HTTP connection (http.c) or `pyrt run` (run.c) --
 * which gives it an answer callback. Ownership: a job belongs to the pool from
 * pool_submit() until the pool answers it, then it is freed (job_free). The client only
 * points at it; when the client leaves, it calls pool_job_detach(), which clears
 * job->client so the answer is dropped. The job's deadline timer is a libuv handle, so
 * the memory goes in the timer's close callback: nothing may touch a job after
 * job_free(). */
#ifndef PYRT_JOB_H
#define PYRT_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/buf.h"
#include "master/config.h"
#include "master/reqid.h"

typedef struct worker worker_t;
typedef struct job job_t;

/* What the pool answers for a job. `headers` holds complete "Name: value\r\n" lines,
 * Content-Type among them. The callee copies what it keeps. */
typedef struct job_answer {
    int status;
    const char *headers;
    size_t headers_len;
    const char *body;
    size_t body_len;
    const char *outcome; /* for the access line: ok, error, timeout, crash, busy */
    pid_t worker_pid;    /* 0: none */
} job_answer_t;

/* Called once with the answer, while job->client is still set. */
typedef void (*job_answer_fn)(job_t *job, const job_answer_t *answer);

struct job {
    void *client;         /* NULL once the client has gone */
    job_answer_fn answer; /* how the client takes its answer */
    worker_t *worker;     /* set while a worker runs it */
    char id[REQID_MAX + 1];
    buf_t body;       /* the raw JSON; moves to the worker's write when sent */
    double timeout;   /* effective, in seconds */
    char target[520]; /* "PATH\nFILE" from the body (body_check_target) */
    uv_timer_t deadline;
    bool queued;
    struct job *prev, *next; /* queue links */
};

/* The execution's timeout: the body's if it gave one, else --default-timeout; capped at
 * --max-timeout. */
double job_timeout(bool given, double seconds, const serve_config_t *cfg);

job_t *job_new(uv_loop_t *loop, void *client, job_answer_fn answer, const char *id,
               double timeout);
void job_free(job_t *job);

/* Gives the answer to the client, if it is still there. The job stays the pool's. */
void job_answer(job_t *job, const job_answer_t *answer);

/* An error answer in the contract's form: {"message": ..., "code": ...}. */
void job_answer_error(job_t *job, int status, const char *message, const char *outcome,
                      pid_t worker_pid);

#endif
