/* pool.c -- worker life (new, kill, exit, free), supervision and shutdown, and the
 * pool's public API (see pool.h; the other parts are listed in pool_internal.h). */
#include "master/pool.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "master/pool_internal.h"
#include "master/proctree.h"
#include "master/uidslot.h"
#include "proto/zygote.h"

pool_state_t pool;

/* ------------------------------------------------------------ helpers ---- */

void describe_exit(const char *who, bool worker, int status, char *out, size_t size)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *name = strsignal(sig);
        snprintf(out, size, "%s killed by signal %d (%s)", who, sig, name ? name : "unknown");
    } else if (WIFEXITED(status)) {
        const char *name = worker ? worker_exit_name(WEXITSTATUS(status)) : NULL;
        if (name)
            snprintf(out, size, "%s exited with status %d (%s)", who, WEXITSTATUS(status), name);
        else
            snprintf(out, size, "%s exited with status %d", who, WEXITSTATUS(status));
    } else {
        snprintf(out, size, "%s stopped (wait status %d)", who, status);
    }
}

void finish_job_error(job_t *job, int status, const char *message, const char *outcome, pid_t pid)
{
    job_answer_error(job, status, message, outcome, pid);
    job_free(job);
}

unsigned live_workers(void)
{
    unsigned n = 0;
    /* A draining worker (tasks.c) is replaced now: it takes nothing new. */
    for (worker_t *w = pool.workers; w; w = w->next)
        if (w->state != W_DYING && !w->draining)
            n++;
    return n;
}

/* `pyrt run` learns once that executions can start, or that they never will. */
void call_ready_hook(void)
{
    void (*hook)(void) = pool.ready_hook;
    pool.ready_hook = NULL;
    if (hook)
        hook();
}

/* ------------------------------------------------------- worker life ---- */

worker_t *worker_new(unsigned id, int chan_fd, int out_fd, int err_fd, gate_t *gate, int *rc)
{
    worker_t *w = xcalloc(1, sizeof(*w));
    w->id = id;
    w->gate = gate;
    w->state = W_SPAWNING;
    w->replaced_for = METRICS_REPLACED_CRASH;
    long n = pool.config->max_requests;
    /* Up to 10% more, at random, so that workers started together do not all go at
     * once (as gunicorn's and uWSGI's jitter). */
    w->recycle_after = n > 0 ? n + (n >= 10 ? random() % (n / 10 + 1) : 0) : 0;
    proto_decoder_init(&w->dec, (uint32_t)(pool.config->max_body + CHANNEL_FRAME_SLACK));
    /* Both inits return 0 on Unix: they only fill the handle. */
    (void)uv_timer_init(pool.loop, &w->timer);
    w->timer.data = w;
    (void)uv_timer_init(pool.loop, &w->cancel_timer);
    w->cancel_timer.data = w;
    (void)uv_pipe_init(pool.loop, &w->chan, 0);
    w->chan.data = w;
    w->chan_open = true;
    w->open_handles = 5; /* channel, two timers, stdout, stderr: each closes via uv_close */
    int chan_rc = uv_pipe_open(&w->chan, chan_fd);
    if (chan_rc != 0)
        (void)close(chan_fd); /* not the handle's: libuv took it only on success */
    int out_rc = output_open(&w->out, w, "stdout", out_fd);
    int err_rc = output_open(&w->err, w, "stderr", err_fd);
    *rc = chan_rc ? chan_rc : out_rc ? out_rc : err_rc;
    w->next = pool.workers;
    if (pool.workers)
        pool.workers->prev = w;
    pool.workers = w;
    return w;
}

static void worker_free(worker_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        pool.workers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    proto_decoder_free(&w->dec);
    free(w->tasks);
    if (w->gate)
        (void)munmap((void *)w->gate, GATE_SIZE);
    uidslot_release(w->uid); /* its processes were killed at its exit or kill */
    free(w);
}

void worker_handle_closed(worker_t *w)
{
    if (--w->open_handles > 0)
        return;
    worker_free(w);
    pool_maintain();
}

static void on_timer_closed(uv_handle_t *handle)
{
    worker_handle_closed(handle->data);
}

/* The output pipes stay open until EOF, since a child the execution started may still
 * write. */
void worker_release(worker_t *w)
{
    channel_close(w);
    uv_timer_t *timers[] = {&w->timer, &w->cancel_timer};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        if (uv_is_closing((uv_handle_t *)timers[i]))
            continue;
        (void)uv_timer_stop(timers[i]); /* always 0 */
        uv_close((uv_handle_t *)timers[i], on_timer_closed);
    }
}

/* Everything the worker runs, the worker included: with a uid of its own, at once
 * (uidslot_kill); in a PID namespace of its own, at once too (its PID 1 dies, and the
 * kernel kills the rest); else by a walk of its process tree. */
static void kill_worker_processes(worker_t *w)
{
    if (w->uid != 0 && uidslot_kill(w->uid) != 0)
        log_msg(LOG_ERROR, "cannot kill the processes of worker uid %u: %s", (unsigned)w->uid,
                strerror(errno));
    if (w->pid > 0 && !w->exited) {
        if (w->uid != 0 || w->own_ns)
            (void)kill(w->pid, SIGKILL);
        else
            proctree_kill_async(w->pid);
    }
}

void worker_kill(worker_t *w, const char *reason)
{
    requeue_prefetched(w, reason ? reason : "worker killed");
    kill_worker_processes(w);
    if (reason && !w->kill_reason)
        w->kill_reason = reason;
    w->expected_exit = true;
    w->state = W_DYING;
    if (w->pid <= 0)
        worker_release(w); /* never forked: nothing to wait for */
}

void worker_lost_job(worker_t *w, const char *what)
{
    requeue_prefetched(w, what);
    tasks_lost(w, what);
    job_t *job = w->job;
    if (job == NULL)
        return;
    w->job = NULL;
    job->worker = NULL;
    log_msg(LOG_WARN, "req=%s: %s", job->id, what);
    finish_job_error(job, 500, what, "crash", w->pid);
}

/* A worker died: what its executions started was reparented to us. A worker being
 * spawned is our child too, before the zygote tells its pid: wait for that. */
void kill_orphans_now(void)
{
    pool.orphans_pending = true;
    for (worker_t *w = pool.workers; w; w = w->next)
        if (w->pid <= 0 && w->state != W_DYING)
            return;
    pool.orphans_pending = false;
    int n = 0;
    for (worker_t *w = pool.workers; w; w = w->next)
        n++;
    pid_t *keep = xmalloc(((size_t)n + 1) * sizeof(pid_t)); /* every worker, the zygote */
    n = 0;
    if (pool.zygote.pid > 0)
        keep[n++] = pool.zygote.pid;
    for (worker_t *w = pool.workers; w; w = w->next)
        if (w->pid > 0 && !w->exited)
            keep[n++] = w->pid;
    int killed = proctree_kill_orphans(keep, n);
    free(keep);
    if (killed > 0)
        log_msg(LOG_INFO, "killed %d process%s left behind by a worker that exited", killed,
                killed == 1 ? "" : "es");
}

static void on_orphan_timer(uv_timer_t *t)
{
    (void)t;
    kill_orphans_now();
}

/* A walk of /proc per exit made 300 workers' shutdown take minutes: one per burst. */
void kill_orphans(void)
{
    if (uidslot_enabled())
        return; /* each worker's leftovers died with its uid (worker_exited) */
    if (!uv_is_active((uv_handle_t *)&pool.orphan_timer) &&
        !uv_is_closing((uv_handle_t *)&pool.orphan_timer))
        (void)uv_timer_start(&pool.orphan_timer, on_orphan_timer, ORPHAN_DELAY_MS, 0);
}

void worker_exited(worker_t *w, int status)
{
    w->exited = true;
    channel_drain(w);
    output_drain(&w->out);
    output_drain(&w->err);
    char what[128];
    if (w->kill_reason)
        snprintf(what, sizeof(what), "%s", w->kill_reason);
    else
        describe_exit("worker", true, status, what, sizeof(what));
    if (!w->expected_exit) {
        /* Only a worker that never answered anything counts toward a restart storm: one
         * that served and then died on one execution says nothing about the next. */
        if (!w->answered)
            backoff_death(&pool.backoff, w->job ? w->job->target : NULL, what);
        snprintf(pool.last_worker_error, sizeof(pool.last_worker_error), "%s", what);
        log_msg(LOG_WARN, "worker %d: %s", (int)w->pid, what);
    } else {
        log_msg(LOG_DEBUG, "worker %d: %s", (int)w->pid, what);
    }
    worker_lost_job(w, what);
    w->state = W_DYING;
    if (!pool.shutting_down && w->pid > 0) {
        metrics_replaced(w->replaced_for);
        static const char *const reasons[METRICS_REPLACEMENTS] = {"timeout", "crash", "memory",
                                                                  "max_requests", "protocol"};
        log_field_t fields[] = {LOG_FIELD_INT("pid", w->pid),
                                LOG_FIELD_STR("reason", reasons[w->replaced_for]),
                                LOG_FIELD_INT("executions", w->executions)};
        log_event(LOG_INFO, "worker_replaced", fields, sizeof(fields) / sizeof(fields[0]));
    }
    /* What it left running (a daemon) goes now, before anything reuses its uid. */
    if (w->uid != 0 && uidslot_kill(w->uid) != 0)
        log_msg(LOG_ERROR, "cannot kill what worker uid %u left: %s", (unsigned)w->uid,
                strerror(errno));
    /* Nothing in a PID namespace is ever handed to us: its PID 1 took every orphan, and
     * the kernel killed them all when it died. */
    bool orphans_possible = !w->own_ns;
    worker_release(w);
    pool_maintain();
    /* After the replacement's spawn: the walk of /proc takes milliseconds. */
    if (orphans_possible)
        kill_orphans();
}

/* ------------------------------------------------------- supervision ---- */

static worker_t *find_worker_pid(pid_t pid)
{
    for (worker_t *w = pool.workers; w; w = w->next)
        if (w->pid == pid)
            return w;
    return NULL;
}

void pool_reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == pool.zygote.pid) {
            zygote_exited(status);
            continue;
        }
        worker_t *w = find_worker_pid(pid);
        if (w) {
            if (!w->exited)
                worker_exited(w, status);
            continue;
        }
        /* A worker whose SPAWNED has not arrived yet, or an orphan of user code that
         * was reparented to us (the master is a child subreaper). */
        pool.unclaimed[pool.unclaimed_next].pid = pid;
        pool.unclaimed[pool.unclaimed_next].status = status;
        pool.unclaimed_next = (pool.unclaimed_next + 1) % UNCLAIMED_MAX;
    }
}

static void on_backoff_done(uv_timer_t *t)
{
    (void)t;
    backoff_end(&pool.backoff);
    pool_maintain();
}

/* Workers keep dying before they answer anything: wait before the next one, and say
 * so, so that a broken function cannot make pyrt spin. Waiting executions of a
 * function that keeps killing its workers get its error now rather than at their
 * deadline; the others wait for a worker. */
static void start_backoff(unsigned delay)
{
    log_msg(LOG_WARN, "workers keep failing (%u in a row, last: %s); next start in %u ms",
            pool.backoff.streak, pool.last_worker_error, delay);
    backoff_begin(&pool.backoff);
    (void)uv_timer_start(&pool.backoff_timer, on_backoff_done, delay, 0); /* 0: not closing */
    job_t *next;
    for (job_t *job = pool.queue.head; job; job = next) {
        next = job->next;
        const char *storm = backoff_storm_error(&pool.backoff, job->target);
        if (storm) {
            queue_remove(&pool.queue, job);
            finish_job_error(job, 500, storm, "crash", 0);
        }
    }
}

void pool_maintain(void)
{
    zygote_t *z = &pool.zygote;
    if (pool.shutting_down) {
        shutdown_maintain();
        return;
    }
    if (z->pid <= 0 && !z->chan_open && !uv_is_active((uv_handle_t *)&z->restart_timer))
        zygote_start();
    if (!z->ready || pool.backoff.active)
        return;
    if (live_workers() >= (unsigned)pool.config->workers)
        return;
    unsigned delay = backoff_due(&pool.backoff);
    if (delay > 0) {
        start_backoff(delay);
        return;
    }
    /* A failed spawn stops the round: the zygote is being replaced, or (it failed
     * here: no fds, say) the next try comes after a wait. */
    while (z->ready && spawn_can_send() && live_workers() < (unsigned)pool.config->workers) {
        if (spawn_worker() < 0) {
            delay = backoff_ms(pool.backoff.streak);
            /* spawn_worker() clears it when the zygote is to be replaced. */
            // cppcheck-suppress knownConditionTrueFalse
            if (z->ready)
                start_backoff(delay > 0 ? delay : BACKOFF_BASE_MS);
            break;
        }
    }
}

/* ------------------------------------------------------------ the API ---- */

void pool_submit(job_t *job)
{
    job->submitted_ns = uv_hrtime();
    job_deadline_start(job, deadline_passed);

    /* A function that keeps killing its workers before they answer: its error now. */
    const char *storm = backoff_storm_error(&pool.backoff, job->target);
    if (storm) {
        finish_job_error(job, 500, storm, "crash", 0);
        return;
    }
    if (pool.queue.length == 0) {
        worker_t *w = tasks_worker_for(job);
        if (w) {
            channel_send_call(w, job, CALL_TASK);
            return;
        }
        if ((w = idle_worker()) != NULL) {
            channel_send_call(w, job, CALL_RUN);
            return;
        }
    }
    /* The zygote keeps dying before it is ready: say why now, not at the deadline. */
    if (live_workers() == 0 && !pool.zygote.ready && pool.zygote.failures >= 2) {
        finish_job_error(job, 500, pool.zygote.last_error, "crash", 0);
        return;
    }
    if (waiting() >= (size_t)pool.config->max_queue) {
        finish_job_error(job, 503, "Server busy", "busy", 0);
        return;
    }
    queue_push(&pool.queue, job);
    dispatch(); /* a busy worker may take it as its next */
}

void pool_job_detach(job_t *job)
{
    job->client = NULL;
    if (job->queued) {
        queue_remove(&pool.queue, job);
        job_free(job);
        pool_maintain();
    }
}

void pool_stats(metrics_gauges_t *g)
{
    for (worker_t *w = pool.workers; w; w = w->next) {
        if (w->state == W_DYING)
            continue;
        g->workers_total++;
        g->workers_busy += w->state == W_BUSY;
        g->workers_idle += w->state == W_IDLE;
        g->in_flight += w->job != NULL;
        g->async_slots_busy += tasks_running(w);
        g->in_flight += tasks_running(w);
        g->async_slots += w->tasks_mode ? pool.config->async_slots : 0;
    }
    g->queued = (long)waiting();
    g->max_queue = pool.config->max_queue;
}

bool pool_ready(void)
{
    if (pool.shutting_down)
        return false;
    for (worker_t *w = pool.workers; w; w = w->next)
        if (w->state == W_IDLE || w->state == W_BUSY)
            return true;
    return false;
}

const char *pool_not_ready_reason(void)
{
    if (pool.shutting_down)
        return "shutting down";
    if (!pool.zygote.ready && pool.zygote.last_error[0])
        return pool.zygote.last_error;
    if (pool.last_worker_error[0] && pool.backoff.streak > 0)
        return pool.last_worker_error;
    return "workers are starting";
}

void pool_on_ready(void (*hook)(void))
{
    pool.ready_hook = hook;
}

void pool_set_output(pool_output_fn sink)
{
    pool.output_sink = sink;
}

bool pool_can_take_work(void)
{
    if (pool.shutting_down)
        return false;
    for (worker_t *w = pool.workers; w; w = w->next)
        if ((w->state == W_IDLE && !w->exited) || (w->tasks_mode && tasks_room(w)))
            return true;
    return waiting() < (size_t)pool.config->max_queue; /* it would wait, not get 503 */
}

int pool_start(uv_loop_t *loop, const serve_config_t *cfg, char **envp, char *err, size_t errlen)
{
    pool.loop = loop;
    pool.config = cfg;
    queue_init(&pool.queue);
    /* Each returns 0 on Unix: it only fills the handle. */
    (void)uv_timer_init(loop, &pool.zygote.restart_timer);
    (void)uv_timer_init(loop, &pool.zygote.spawn_timer);
    (void)uv_timer_init(loop, &pool.orphan_timer);
    (void)uv_timer_init(loop, &pool.backoff_timer);
    (void)uv_timer_init(loop, &pool.stop_timer);

    zygote_args_t args = {
        .code_dir = cfg->code_dir,
        .entrypoint = cfg->entrypoint,
        .master_pid = (long)getpid(),
        .max_memory_mib = cfg->max_memory_mib,
        .max_body = cfg->max_body,
        .log_level = log_level_name(log_min_level),
        .log_format = log_is_json() ? "json" : "text",
        .contract = contract_name(cfg->contract),
        .user = cfg->user,
        .preload = cfg->preload,
        .worker_uid_base = cfg->worker_uid_base > 0 ? cfg->worker_uid_base : 0,
        .tmp_dir = cfg->worker_tmp_dir,
        /* A uid each keeps workers apart already; shared, namespaces do it. */
        .worker_namespaces = cfg->worker_uid_base <= 0 && !cfg->no_worker_namespaces,
    };
    pool.zygote.namespaces_said = -1;
    if (cfg->worker_uid_base <= 0 && cfg->no_worker_namespaces)
        log_msg(LOG_INFO, "workers: no namespaces of their own (--no-worker-namespaces): they "
                          "can signal the master, the zygote and each other");
    uidslot_init(args.worker_uid_base, uidslot_count(cfg->workers));
    pool.zygote.argv = zygote_args_argv(&args);
    pool.zygote.env = envp;

    zygote_start();
    if (pool.zygote.pid <= 0) {
        snprintf(err, errlen, "%s", pool.zygote.last_error);
        return -1;
    }
    return 0;
}
