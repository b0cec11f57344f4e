/* dispatch.c -- which worker runs which job: an idle worker takes the queue's head, a
 * busy one gets the next job behind its execution (prefetch), and a prefetched job is
 * taken back when another worker can run it sooner or its worker will not. */
#include "common/log.h"
#include "master/pool_internal.h"

worker_t *idle_worker(void)
{
    for (worker_t *w = pool.workers; w; w = w->next)
        if (w->state == W_IDLE && !w->exited)
            return w;
    return NULL;
}

/* Executions waiting for a worker: queued, or prefetched behind a busy one. */
size_t waiting(void)
{
    size_t n = pool.queue.length;
    for (worker_t *w = pool.workers; w; w = w->next)
        n += w->prefetched != NULL;
    return n;
}

/* The gate says the worker had started it, whose effects may then be half done: that
 * one is answered like a crash. */
void requeue_prefetched(worker_t *w, const char *what)
{
    job_t *job = w->prefetched;
    if (job == NULL)
        return;
    w->prefetched = NULL;
    job->worker = NULL;
    if (gate_cancel(w->gate, w->next_seq) == GATE_WON) {
        queue_push_front(&pool.queue, job);
        return;
    }
    log_msg(LOG_WARN, "req=%s: %s", job->id, what);
    finish_job_error(job, 500, what, "crash", w->pid);
}

/* A prefetched job that waits behind a busy worker, taken back so an idle one runs
 * it now. NULL when there is none, or each one has started meanwhile. */
static job_t *take_back_prefetched(void)
{
    for (worker_t *w = pool.workers; w; w = w->next) {
        job_t *job = w->prefetched;
        if (job == NULL || gate_cancel(w->gate, w->next_seq) != GATE_WON)
            continue;
        w->prefetched = NULL;
        job->worker = NULL;
        return job;
    }
    return NULL;
}

/* The queue's head must wait -- it runs alone and no worker is idle, or every worker
 * is full. Tasks behind a head that runs alone need not wait for it: they go where
 * there is room, and one worker stops taking tasks so that it falls idle for the head
 * (tasks.c). Only the first QUEUE_SCAN_MAX jobs are looked at. */
static void dispatch_tasks_behind(void)
{
    if (pool.config->async_slots <= 1 || pool.queue.length == 0 ||
        tasks_known_async(pool.queue.head->target))
        return;
    bool room = false;
    for (worker_t *w = pool.workers; w && !room; w = w->next)
        room = tasks_room(w);
    tasks_reserve_one();
    job_t *job = pool.queue.head->next;
    for (unsigned looked = 0; room && job && looked < QUEUE_SCAN_MAX; looked++) {
        job_t *next = job->next;
        worker_t *w = tasks_worker_for(job);
        if (w) {
            queue_remove(&pool.queue, job);
            channel_send_call(w, job, CALL_TASK);
        }
        job = next;
    }
}

void dispatch(void)
{
    worker_t *w;
    /* A worker kept from tasks for a job that must run alone is free again once no such
     * job heads the queue (it left: answered at its deadline, its client gone). */
    if (pool.config->async_slots > 1 &&
        (pool.queue.length == 0 || tasks_known_async(pool.queue.head->target)))
        for (w = pool.workers; w; w = w->next)
            w->reserved = false;
    /* In order: a job whose function has a coroutine main goes as a task where there is
     * room (tasks.c), any other to an idle worker. */
    while (pool.queue.length > 0) {
        if ((w = tasks_worker_for(pool.queue.head)) != NULL)
            channel_send_call(w, queue_pop(&pool.queue), CALL_TASK);
        else if ((w = idle_worker()) != NULL)
            channel_send_call(w, queue_pop(&pool.queue), CALL_RUN);
        else
            break;
    }
    dispatch_tasks_behind();
    while ((w = idle_worker()) != NULL) {
        job_t *job = take_back_prefetched();
        if (job == NULL)
            break;
        channel_send_call(w, job, CALL_RUN);
    }
    /* Still waiting, and no worker idle: each busy worker gets the next one now, so it
     * goes straight on to it. Large bodies wait in the queue: prefetching saves a
     * wake-up, which does not matter next to them, and keeps a copy. */
    for (w = pool.workers; w && pool.queue.length > 0; w = w->next) {
        /* Not behind a worker's last execution (--max-requests): it goes after that
         * answer, and a CALL it had claimed by then would go with it. */
        bool last = w->recycle_after > 0 && w->executions + 1 >= w->recycle_after;
        if (w->state == W_BUSY && !w->tasks_mode && !w->prefetch_used && w->chan_open && !last &&
            pool.queue.head->body.len <= PREFETCH_MAX_BODY)
            channel_send_call(w, queue_pop(&pool.queue), CALL_PREFETCH);
    }
    pool_maintain();
}
