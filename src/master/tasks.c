/* tasks.c -- --async-slots: executions of a function whose main is a coroutine function
 * run side by side as tasks on one worker's event loop. Which worker takes a task, its
 * answer, what it prints, and its deadline: the client is answered at once and the task
 * cancelled; a worker that has not read the CANCEL within TASK_CANCEL_GRACE_MS (sync
 * code is blocking its loop) is killed, and every execution on it answered with a 500
 * that names the one that blocked it.
 *
 * The master learns what a function is from its answers (the ASYNC and SYNC flags): a
 * function not known to have a coroutine main runs alone on an idle worker, as without
 * tasks; while such a job waits, one worker takes no more tasks (dispatch.c). */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "master/pool_internal.h"

/* ------------------------------------------------------------ what a function is ---- */

static int async_target_index(const char *target)
{
    for (int i = 0; i < ASYNC_TARGETS; i++)
        if (pool.async_target_used[i] && strcmp(pool.async_targets[i], target) == 0)
            return i;
    return -1;
}

void tasks_learn(const char *target, uint32_t result_flags)
{
    if (pool.config->async_slots <= 1)
        return;
    int i = async_target_index(target);
    if (!(result_flags & PROTO_RESULT_ASYNC)) {
        /* Only a main that ran and was sync says so (a new file): an error before main
         * (a bad body, a broken import) says nothing. */
        if (i >= 0 && (result_flags & PROTO_RESULT_SYNC))
            pool.async_target_used[i] = false;
        return;
    }
    if (i >= 0)
        return;
    unsigned slot = pool.async_target_next;
    pool.async_target_next = (slot + 1) % ASYNC_TARGETS; /* the oldest goes */
    snprintf(pool.async_targets[slot], sizeof(pool.async_targets[slot]), "%s", target);
    pool.async_target_used[slot] = true;
}

/* ------------------------------------------------------------ placing a task ---- */

/* Room for one more task: in tasks mode or idle, nothing exclusive, not going or
 * reserved, and its loop not known to be stuck (a CANCEL unread). UINT32_MAX: no room. */
static unsigned load_of(const worker_t *w)
{
    if (!w->chan_open || w->exited || w->draining || w->reserved || w->cancels_pending > 0)
        return UINT32_MAX;
    if (w->state == W_IDLE && !w->prefetched)
        return 0;
    if (w->state == W_BUSY && w->tasks_mode && w->job == NULL &&
        w->task_count < (unsigned)pool.config->async_slots)
        return w->task_count;
    return UINT32_MAX;
}

bool tasks_known_async(const char *target)
{
    return pool.config->async_slots > 1 && async_target_index(target) >= 0;
}

bool tasks_room(const worker_t *w)
{
    return pool.config->async_slots > 1 && load_of(w) != UINT32_MAX;
}

void tasks_reserve_one(void)
{
    worker_t *best = NULL;
    for (worker_t *w = pool.workers; w; w = w->next) {
        if (w->reserved && w->state != W_DYING)
            return; /* one is on its way to idle already */
        if (w->tasks_mode && w->state == W_BUSY && w->job == NULL && !w->draining &&
            (best == NULL || w->task_count < best->task_count))
            best = w;
    }
    if (best)
        best->reserved = true;
}

void tasks_output_period_ends(worker_t *w)
{
    output_end_execution(w, true);
}

worker_t *tasks_worker_for(const job_t *job)
{
    if (pool.config->async_slots <= 1 || async_target_index(job->target) < 0)
        return NULL;
    /* The least loaded: tasks spread over the workers, and so over the CPUs. */
    worker_t *best = NULL;
    unsigned best_load = UINT32_MAX;
    for (worker_t *w = pool.workers; w; w = w->next) {
        unsigned load = load_of(w);
        if (load < best_load) {
            best = w;
            best_load = load;
        }
    }
    return best;
}

void tasks_add(worker_t *w, job_t *job, uint32_t seq)
{
    if (!w->tasks_mode) {
        w->tasks_mode = true; /* it switches at this CALL, for good */
        w->tasks = xcalloc((size_t)pool.config->async_slots, sizeof(*w->tasks));
        w->output_bytes = 0; /* from now on: its unattributed output (output.c) */
        w->output_cut = false;
    }
    if (w->task_count == 1 && !w->output_mixed) {
        /* What the one task wrote to fds 1 and 2 so far is its own; from now on the
         * pipes' output is nobody's, until the worker falls idle. */
        tasks_output_period_ends(w);
        w->output_mixed = true;
    }
    task_t *t = &w->tasks[w->task_count++];
    memset(t, 0, sizeof(*t));
    t->job = job;
    t->seq = seq;
    snprintf(t->id, sizeof(t->id), "%s", job->id);
    w->state = W_BUSY;
    if (job->started_ns == 0)
        job->started_ns = uv_hrtime();
}

task_t *tasks_find(worker_t *w, uint32_t seq)
{
    for (unsigned i = 0; i < w->task_count; i++)
        if (w->tasks[i].seq == seq)
            return &w->tasks[i];
    return NULL;
}

task_t *tasks_sole(worker_t *w)
{
    return w->task_count == 1 && w->job == NULL && w->tasks[0].job ? &w->tasks[0] : NULL;
}

task_t *tasks_of_job(worker_t *w, const job_t *job)
{
    for (unsigned i = 0; i < w->task_count; i++)
        if (w->tasks[i].job == job)
            return &w->tasks[i];
    return NULL;
}

long tasks_running(const worker_t *w)
{
    long n = 0;
    for (unsigned i = 0; i < w->task_count; i++)
        n += w->tasks[i].job != NULL;
    return n;
}

/* The task's slot is free (the last one moves into it). */
static void remove_task(worker_t *w, task_t *t)
{
    *t = w->tasks[--w->task_count];
}

/* ------------------------------------------------------------ answers ---- */

/* A worker with no task left falls idle, or goes if it was draining. */
static void after_task(worker_t *w)
{
    if (w->task_count > 0)
        return;
    if (w->output_mixed) {
        tasks_output_period_ends(w); /* nobody's: logged as unattributed */
        w->output_mixed = false;
    }
    if (w->draining) {
        /* It exits at its channel's EOF (tasks.c in the worker), or is killed. */
        w->state = W_DYING;
        w->expected_exit = true;
        channel_close_expecting_exit(w);
        return;
    }
    w->state = W_IDLE;
    w->reserved = false;
    w->output_bytes = 0;
    w->output_cut = false;
}

static void stop_grace_if_done(worker_t *w);

void tasks_result(worker_t *w, task_t *t, const result_t *res)
{
    job_t *job = t->job;
    if (job && job->contract == CONTRACT_V5 && t == tasks_sole(w) && !w->output_mixed)
        output_end_execution(w, true); /* what it wrote to fds 1 and 2: its log file */
    bool cancelled = job == NULL;
    bool unread = cancelled && !t->acked;
    remove_task(w, t);
    if (unread) { /* its RESULT came before its CANCELLED: the loop turns */
        w->cancels_pending--;
        stop_grace_if_done(w);
    }
    if (!cancelled) {
        job->worker = NULL;
        w->answered = true;
        backoff_answered(&pool.backoff, job->target);
        tasks_learn(job->target, res->flags);
    }
    if (channel_recycle_due(w, res->flags))
        w->draining = true;
    after_task(w);
    if (!cancelled)
        channel_answer(job, res, w->pid, (res->flags & PROTO_RESULT_RECYCLE) != 0);
    dispatch();
    pool_maintain();
}

void tasks_lost(worker_t *w, const char *what)
{
    while (w->task_count > 0) {
        task_t *t = &w->tasks[w->task_count - 1];
        job_t *job = t->job;
        w->task_count--;
        if (job == NULL)
            continue;
        job->worker = NULL;
        log_msg(LOG_WARN, "req=%s: %s", job->id, what);
        finish_job_error(job, 500, what, "crash", w->pid);
    }
    w->cancels_pending = 0;
}

/* ------------------------------------------------------------ what tasks print ---- */

int tasks_cancel_read(worker_t *w, const proto_frame_t *f)
{
    proto_reader_t r;
    proto_reader_init(&r, f->payload, f->length);
    uint32_t seq = proto_get_u32(&r);
    if (r.error || r.left != 0)
        return -1;
    task_t *t = tasks_find(w, seq);
    if (t == NULL || t->job != NULL || t->acked)
        return 0; /* it ended first (its RESULT counted), or a CANCEL we never sent */
    t->acked = true;
    w->cancels_pending--;
    stop_grace_if_done(w);
    return 0;
}

void tasks_frame_owner(worker_t *w, uint32_t seq, frame_owner_t *out)
{
    task_t *t = w->job && seq == w->seq_running ? NULL : tasks_find(w, seq);
    if (t) {
        *out = (frame_owner_t){t->job, t->id, &t->output_bytes, &t->output_cut};
        return;
    }
    *out =
        (frame_owner_t){NULL, w->last_id[0] ? w->last_id : "-", &w->output_bytes, &w->output_cut};
    if (w->job && seq == w->seq_running) {
        out->job = w->job;
        out->id = w->job->id;
    } else if (w->tasks_mode) {
        out->id = "unattributed"; /* a thread or task of an execution that has ended */
    }
}

int tasks_output(worker_t *w, const proto_frame_t *f)
{
    proto_text_t out;
    if (proto_get_text(f->payload, f->length, &out) < 0 || out.stream > PROTO_OUTPUT_STDERR)
        return -1;
    const char *name = out.stream == PROTO_OUTPUT_STDERR ? "stderr" : "stdout";
    frame_owner_t o;
    tasks_frame_owner(w, out.seq, &o);
    /* Whole lines, as the worker cut them; a longer one goes in pieces, as from a pipe. */
    const char *p = (const char *)out.text, *end = p + out.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        do {
            size_t piece =
                (size_t)(stop - p) > OUTPUT_LINE_MAX ? OUTPUT_LINE_MAX : (size_t)(stop - p);
            output_route(w, o.job, o.id, name, o.bytes, o.cut, p, piece);
            p += piece;
        } while (p < stop);
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* ------------------------------------------------------------ deadlines ---- */

/* A worker that has not read a CANCEL within its grace has a loop stuck in sync code:
 * the worker goes, and each of its executions is answered with a 500 that names the
 * execution that was running (the gate says which; else the cancelled one). */
static void on_cancel_grace(uv_timer_t *timer)
{
    worker_t *w = timer->data;
    /* Timers run before I/O in a loop turn: on a loaded machine the CANCELLED may be
     * waiting in the channel. */
    channel_drain(w);
    if (w->state == W_DYING || w->cancels_pending == 0)
        return;
    uint64_t now = uv_now(pool.loop), next = 0;
    const task_t *late = NULL;
    for (unsigned i = 0; i < w->task_count; i++) {
        const task_t *t = &w->tasks[i];
        if (t->job != NULL || t->acked)
            continue;
        if (t->cancel_by <= now && late == NULL)
            late = t;
        else if (next == 0 || t->cancel_by < next)
            next = t->cancel_by;
    }
    if (late == NULL) {
        if (next > 0)
            (void)uv_timer_start(timer, on_cancel_grace, next - now, 0);
        return;
    }
    uint64_t running = atomic_load_explicit(&w->gate->running, memory_order_relaxed);
    const task_t *blocker = running <= UINT32_MAX ? tasks_find(w, (uint32_t)running) : NULL;
    char what[ERROR_TEXT_MAX];
    snprintf(what, sizeof(what),
             "execution %s blocked the worker's event loop (%s); the "
             "worker was replaced",
             blocker ? blocker->id : late->id,
             blocker ? "sync code in a coroutine"
                     : "the worker did not read its cancellation at the deadline");
    log_msg(LOG_WARN, "worker %d: %s", (int)w->pid, what);
    w->replaced_for = METRICS_REPLACED_TIMEOUT;
    worker_lost_job(w, what);
    worker_kill(w, "its event loop was blocked");
    pool_maintain();
}

static void stop_grace_if_done(worker_t *w)
{
    if (w->cancels_pending == 0)
        (void)uv_timer_stop(&w->cancel_timer); /* always 0 */
}

void tasks_deadline(worker_t *w, job_t *job, const char *message, const char *secs)
{
    task_t *t = tasks_of_job(w, job);
    if (t == NULL)
        return;
    t->job = NULL;
    job->worker = NULL;
    t->cancel_by = uv_now(pool.loop) + TASK_CANCEL_GRACE_MS;
    w->cancels_pending++;
    log_msg(LOG_WARN, "req=%s: timed out after %s s; cancelling its task on worker %d", job->id,
            secs, (int)w->pid);
    finish_job_error(job, 500, message, "timeout", w->pid);
    channel_send_u32(w, PROTO_MSG_CANCEL, t->seq);
    if (!uv_is_active((uv_handle_t *)&w->cancel_timer))
        (void)uv_timer_start(&w->cancel_timer, on_cancel_grace, TASK_CANCEL_GRACE_MS, 0);
}
