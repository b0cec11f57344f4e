/* pool.h -- the workers: started through the zygote, fed jobs, watched, replaced.
 *
 * The master starts one zygote (pyrt itself, exec'd with an environment that never
 * held the key), which initialises Python once and forks each worker on request. A
 * worker is forked with CLONE_PARENT, so the master is its parent: it gets SIGCHLD and
 * the exit status directly. Each worker has a socketpair channel for frames and two
 * pipes for its stdout and stderr, which the master reads and logs line by line,
 * tagged with the execution's request id.
 *
 * Jobs wait in a FIFO for an idle worker. Each job's deadline runs from the moment its
 * request was complete: a job still queued at its deadline is answered with the
 * timeout; a running one gets its worker SIGKILLed, the answer at once, and a
 * replacement forked from the zygote. */
#ifndef PYRT_POOL_H
#define PYRT_POOL_H

#include <stdbool.h>
#include <uv.h>

#include "master/config.h"
#include "master/job.h"
#include "master/metrics.h"

/* Starts the zygote; workers follow when it is ready. The environment given to the
 * zygote is `envp` (the key already removed). 0, or -1 with err. */
int pool_start(uv_loop_t *loop, const serve_config_t *cfg, char **envp, char *err, size_t errlen);

/* Takes the job: it will be answered (if its client is still there) and freed. */
void pool_submit(job_t *job);

/* The job's client left: its answer will be dropped. */
void pool_job_detach(job_t *job);

/* The pool's gauges for GET /__metrics: workers by state, executions running and
 * waiting, --max-queue (added to what `g` holds). */
void pool_stats(metrics_gauges_t *g);

/* Readiness: would an execution sent now be taken -- a worker idle, or room in the queue
 * (not a 503 Server busy) -- and is the pool not shutting down? */
bool pool_can_take_work(void);

/* --shutdown-timeout passed: what waits is answered 503, what runs is stopped (its
 * worker killed; the answer names `why`). */
void pool_stop_now(const char *why);

/* Can an execution start now or soon (a worker is ready)? And if not, why. */
bool pool_ready(void);
const char *pool_not_ready_reason(void);

/* Calls `hook` once: when the first worker is ready, or when the zygote has failed to
 * start twice (a job submitted then is answered with its error at once). */
void pool_on_ready(void (*hook)(void));

/* Where the workers' output lines go: by default the log, each line tagged with its
 * request id; `pyrt run` writes them to its stderr as they are. `stream` is "stdout"
 * or "stderr"; `text` has no newline and is not NUL-terminated. */
typedef void (*pool_output_fn)(const char *stream, const char *text, size_t len);
void pool_set_output(pool_output_fn sink);

/* Shutdown: runs what is queued and in flight, then stops workers and zygote and calls
 * `done` once every child has exited. */
void pool_shutdown(void (*done)(void));

/* SIGCHLD: reap every exited child. */
void pool_reap(void);

#endif
