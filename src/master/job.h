/* job.h -- one execution, from the complete request to the answer.
 *
 * A job comes from a client -- an HTTP connection (http.c) or `pyrt run` (run.c) --
 * which gives it an answer callback. Ownership: a job belongs to the pool from
 * pool_submit() until the pool answers it, then it is freed (job_free). The client only
 * points at it; when the client leaves, it calls pool_job_detach(), which clears
 * job->client so the answer is dropped. The job's deadline timer is a libuv handle, so
 * the memory goes in the timer's close callback: nothing may touch a job after
 * job_free() -- but for `answered`, until the caller's stack unwinds.
 *
 * The deadline is this file's: job_deadline_start() runs the timer from the moment the
 * request was complete, job_free() stops it, and the pool hears of it once (expired). */
#ifndef PYRT_JOB_H
#define PYRT_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/buf.h"
#include "master/config.h"
#include "master/execlog.h"
#include "master/reqid.h"

#define JOB_TARGET_MAX 520 /* "PATH\nFILE" of the function a seed body names */

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
    const char *outcome; /* for the access line: ok, error, memory, timeout, crash, busy */
    pid_t worker_pid;    /* 0: none */
    double queue_wait;   /* seconds it waited for a worker: filled in by job_answer() */
} job_answer_t;

/* Called once with the answer, while job->client is still set. */
typedef void (*job_answer_fn)(job_t *job, const job_answer_t *answer);

struct job {
    contract_t contract;  /* how its answers and errors are shaped */
    void *client;         /* NULL once the client has gone */
    job_answer_fn answer; /* how the client takes its answer */
    worker_t *worker;     /* set while a worker runs it */
    char id[REQID_MAX + 1];
    buf_t body;     /* the raw body; moves to the worker's write when sent */
    buf_t head;     /* v5: method, target and headers, encoded for the CALL (proto.h) */
    execlog_t log;  /* v5: the execution's log files (execlog_begin'd by the client) */
    double timeout; /* effective, in seconds */
    char target[JOB_TARGET_MAX]; /* "PATH\nFILE" from the body (body_check_target) */
    uv_timer_t deadline;
    void (*expired)(job_t *job); /* the deadline passed (job_deadline_start) */
    bool answered;               /* its answer is given (or dropped: its client left) */
    uint64_t submitted_ns;       /* uv_hrtime() at pool_submit */
    uint64_t started_ns;         /* when a worker took it (0: none did) */
    bool queued;
    struct job *prev, *next; /* queue links */
};

/* The execution's timeout: the body's if it gave one, else --default-timeout; capped at
 * --max-timeout. */
double job_timeout(bool given, double seconds, const serve_config_t *cfg);

job_t *job_new(uv_loop_t *loop, contract_t contract, void *client, job_answer_fn answer,
               const char *id, double timeout);
void job_free(job_t *job);

/* Starts the job's deadline: job->timeout from now, at least 1 ms. `expired` is called
 * when it passes, unless the job is freed first. */
void job_deadline_start(job_t *job, void (*expired)(job_t *job));

/* Gives the answer to the client, if it is still there, and marks the job answered. The
 * job stays the pool's. In
 * v5, the execution's log files are completed first and the answer names them
 * (x-open-runtimes-log-id). */
void job_answer(job_t *job, const job_answer_t *answer);

/* An error answer in the contract's form (error_answer_format); in v5 the message goes
 * to the execution's errors file and the body stays empty. */
void job_answer_error(job_t *job, int status, const char *message, const char *outcome,
                      pid_t worker_pid);

/* The one place an error answer gets its shape, for jobs and for the checks before a
 * job exists: seed {"message": M, "code": N} (JSON); v2 the executor's envelope
 * {"stdout": "", "stderr": M} (JSON); v5 an empty body (`public` false: the message
 * may name code and goes to the errors file instead) or M as plain text (`public`
 * true: pyrt's own checks of the request, such as a bad timeout header). Appends the
 * header lines and the body. */
void error_answer_format(contract_t contract, int status, const char *message, bool public,
                         buf_t *headers, buf_t *body);

#endif
