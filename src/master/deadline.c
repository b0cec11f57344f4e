/* deadline.c -- a job whose deadline passed (job.c runs the timer): answered with the
 * timeout wherever it is -- queued, prefetched behind a worker, running as a task (which
 * is cancelled: tasks.c), or running alone, whose worker is then killed and replaced. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "master/pool_internal.h"

/* "2", "1.5", "0.25": the effective timeout in its shortest form. */
static void format_seconds(double s, char *out, size_t size)
{
    snprintf(out, size, "%.6f", s);
    char *dot = strchr(out, '.');
    if (dot == NULL)
        return;
    char *end = out + strlen(out) - 1;
    while (end > dot && *end == '0')
        *end-- = '\0';
    if (end == dot)
        *end = '\0';
}

/* The job is prefetched behind w: take it back before it starts, or learn that it has.
 * false when it was answered meanwhile (its predecessor's answer came with it). */
static bool take_back(job_t *job, worker_t *w)
{
    if (gate_cancel(w->gate, w->next_seq) == GATE_WON) {
        w->prefetched = NULL; /* it never started: the worker will skip it */
        job->worker = NULL;
    } else {
        /* It started just now: the answer before it is in the channel by now. */
        channel_drain(w);
        if (job->answered)
            return false;
    }
    if (job->worker == w && w->prefetched == job) {
        /* Started, yet its predecessor's answer is not in: the gate was written by user
         * code. That worker goes, and what it ran with it. */
        log_msg(LOG_WARN, "req=%s: worker %d started it out of turn; killing it", job->id,
                (int)w->pid);
        w->prefetched = NULL;
        job->worker = NULL;
        worker_lost_job(w, "worker broke the execution order");
        worker_kill(w, "worker broke the execution order");
    }
    return true;
}

/* The job's running worker goes: SIGKILLed at once (it may be burning a CPU the
 * replacement needs); then the answer, the replacement's spawn, and only then the walk
 * of /proc for what the worker started (milliseconds), so that neither the client nor
 * the next executions wait for it. */
static void kill_running(job_t *job, const char *msg, const char *secs)
{
    worker_t *w = job->worker;
    pid_t pid = w->pid;
    if (job->contract == CONTRACT_V5)
        output_end_execution(w, true); /* what it printed belongs in its log file */
    w->job = NULL;
    job->worker = NULL;
    log_msg(LOG_WARN, "req=%s: timed out after %s s; killing worker %d", job->id, secs, (int)pid);
    if (pid > 0 && !w->exited)
        (void)kill(pid, SIGKILL);
    requeue_prefetched(w, "worker killed at a deadline");
    w->state = W_DYING;
    finish_job_error(job, 500, msg, "timeout", pid);
    pool_maintain();
    w->replaced_for = METRICS_REPLACED_TIMEOUT;
    worker_kill(w, "killed at its execution's deadline");
}

void deadline_passed(job_t *job)
{
    char secs[32], msg[96];
    format_seconds(job->timeout, secs, sizeof(secs));
    if (job->contract == CONTRACT_V5)
        snprintf(msg, sizeof(msg), "Execution timed out."); /* open-runtimes' words */
    else
        snprintf(msg, sizeof(msg), "Execution timed out after %s seconds", secs);
    if (job->worker) {
        /* An answer already in the channel beat the deadline; and a prefetched job may
         * have become the running one. */
        channel_drain(job->worker);
        if (job->answered)
            return;
    }
    if (job->worker && job->worker->prefetched == job && !take_back(job, job->worker))
        return;
    if (job->worker && job->worker->tasks_mode && job->worker->job != job) {
        tasks_deadline(job->worker, job, msg, secs); /* the worker stays */
        pool_maintain();
        return;
    }
    if (job->queued) {
        queue_remove(&pool.queue, job);
    } else if (job->worker) {
        kill_running(job, msg, secs);
        return;
    }
    finish_job_error(job, 500, msg, "timeout", 0);
    pool_maintain();
}
