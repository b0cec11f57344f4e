/* shutdown.c -- the pool's end: what waits and runs is finished (or, past
 * --shutdown-timeout, stopped), then every worker and the zygote are stopped, and the
 * caller hears once every child has exited and every handle has closed. */
#include <signal.h>

#include "master/pool_internal.h"
#include "master/uidslot.h"

static bool busy(void)
{
    if (pool.queue.length > 0)
        return true;
    for (worker_t *w = pool.workers; w; w = w->next)
        if (w->state == W_BUSY)
            return true;
    return false;
}

static void on_stop_timeout(uv_timer_t *t)
{
    (void)t;
    for (worker_t *w = pool.workers; w; w = w->next)
        if (w->pid > 0 && !w->exited)
            (void)kill(w->pid, SIGKILL);
    if (pool.zygote.pid > 0)
        (void)kill(pool.zygote.pid, SIGKILL);
    for (worker_t *w = pool.workers; w; w = w->next) {
        output_close(&w->out);
        output_close(&w->err);
    }
    pool_maintain();
}

static void stop_all(void)
{
    pool.stopping = true;
    (void)uv_timer_stop(&pool.zygote.restart_timer); /* always 0 */
    (void)uv_timer_stop(&pool.zygote.spawn_timer);
    (void)uv_timer_stop(&pool.backoff_timer);
    /* Closing a worker's channel makes it exit at its next read; the zygote likewise. */
    for (worker_t *w = pool.workers; w; w = w->next) {
        w->expected_exit = true;
        w->state = W_DYING;
        channel_close(w);
        if (w->pid <= 0)
            worker_release(w);
    }
    zygote_close_channel();
    (void)uv_timer_start(&pool.stop_timer, on_stop_timeout, STOP_GRACE_MS, 0);
}

/* Once every child has exited and every handle closed: the pool's own timers go, then
 * the caller hears it. */
static void finish_shutdown(void)
{
    void (*done)(void) = pool.shutdown_done;
    pool.shutdown_done = NULL;
    (void)uv_timer_stop(&pool.stop_timer);
    uv_close((uv_handle_t *)&pool.stop_timer, NULL);
    uv_close((uv_handle_t *)&pool.backoff_timer, NULL);
    uv_close((uv_handle_t *)&pool.zygote.restart_timer, NULL);
    uv_close((uv_handle_t *)&pool.zygote.spawn_timer, NULL);
    if (!uidslot_enabled())
        kill_orphans_now(); /* the last exits' leftovers: the timer goes now */
    uv_close((uv_handle_t *)&pool.orphan_timer, NULL);
    done();
}

void shutdown_maintain(void)
{
    zygote_t *z = &pool.zygote;
    if (!pool.stopping && !busy())
        stop_all();
    if (pool.stopping && pool.workers == NULL && z->pid == 0 && !z->chan_open && pool.shutdown_done)
        finish_shutdown();
}

void pool_stop_now(const char *why)
{
    job_t *job;
    while ((job = queue_pop(&pool.queue)) != NULL)
        finish_job_error(job, 503, why, "busy", 0);
    for (worker_t *w = pool.workers; w; w = w->next)
        if (w->state == W_BUSY)
            worker_kill(w, why); /* its answer: 500 naming why, when it has exited */
    job_t *requeued;             /* prefetched jobs the kills gave back */
    while ((requeued = queue_pop(&pool.queue)) != NULL)
        finish_job_error(requeued, 503, why, "busy", 0);
    pool_maintain();
}

void pool_shutdown(void (*done)(void))
{
    pool.shutting_down = true;
    pool.shutdown_done = done;
    pool_maintain();
}
