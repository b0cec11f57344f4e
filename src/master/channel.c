/* channel.c -- a worker's channel: frames in (READY, RESULT, LOG, OUTPUT), CALL, GO and
 * CANCEL out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "master/execlog.h"
#include "master/pool_internal.h"

/* A write that did not go at once: it owns what is left of the frame. */
typedef struct call_write {
    uv_write_t req;
    buf_t head;
    buf_t body;
} call_write_t;

void pool_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    *b = uv_buf_init(pool.io_chunk, sizeof(pool.io_chunk));
}

void read_available(uv_handle_t *h, void (*feed)(void *ctx, const char *data, size_t len),
                    void *ctx)
{
    uv_os_fd_t fd;
    if (uv_fileno(h, &fd) != 0)
        return;
    for (;;) {
        ssize_t n = read(fd, pool.io_chunk, sizeof(pool.io_chunk));
        if (n > 0)
            feed(ctx, pool.io_chunk, (size_t)n);
        else if (n < 0 && errno == EINTR)
            continue;
        else
            break;
    }
}

static void on_closed(uv_handle_t *handle)
{
    worker_handle_closed(handle->data);
}

void channel_close(worker_t *w)
{
    if (!w->chan_open)
        return;
    w->chan_open = false;
    uv_close((uv_handle_t *)&w->chan, on_closed);
}

/* ------------------------------------------------------------ sending ---- */

static void on_call_written(uv_write_t *req, int status)
{
    call_write_t *cw = (call_write_t *)req;
    (void)status; /* a failed write shows up as the worker's EOF or exit */
    buf_free(&cw->head);
    buf_free(&cw->body);
    free(cw);
}

/* Writes a frame to the worker's channel: `head` (taken), then `body`. Most frames go
 * at once in one writev, with no write request (which would cost two epoll_ctl
 * calls); the rest waits in a request that owns it -- `body_owner` (whose data is
 * `body`) moved into it, or else a copy of what is left. -1 when the channel is
 * broken. */
static int channel_send(worker_t *w, buf_t *head, const char *body, size_t body_len,
                        buf_t *body_owner)
{
    uv_buf_t bufs[2] = {uv_buf_init(head->data, (unsigned int)head->len),
                        uv_buf_init((char *)(body ? body : ""), (unsigned int)body_len)};
    int rc = uv_try_write((uv_stream_t *)&w->chan, bufs, 2);
    if (rc < 0 && rc != UV_EAGAIN) {
        buf_free(head);
        return -1;
    }
    size_t done = rc > 0 ? (size_t)rc : 0;
    if (done == head->len + body_len) {
        buf_free(head);
        return 0;
    }
    call_write_t *cw = xcalloc(1, sizeof(*cw));
    size_t head_done = done < head->len ? done : head->len;
    buf_append(&cw->head, head->data + head_done, head->len - head_done);
    buf_free(head);
    size_t body_done = done - head_done;
    const char *body_rest;
    if (body_owner) {
        cw->body = *body_owner; /* no copy of a 20 MiB body: it moves */
        buf_init(body_owner);
        body_rest = cw->body.data ? cw->body.data + body_done : "";
    } else {
        buf_append(&cw->body, body + body_done, body_len - body_done);
        body_rest = cw->body.data ? cw->body.data : "";
    }
    uv_buf_t rest[2] = {uv_buf_init(cw->head.data ? cw->head.data : "", (unsigned int)cw->head.len),
                        uv_buf_init((char *)body_rest, (unsigned int)(body_len - body_done))};
    rc = uv_write(&cw->req, (uv_stream_t *)&w->chan, rest, 2, on_call_written);
    if (rc != 0) {
        buf_free(&cw->head);
        buf_free(&cw->body);
        free(cw);
        return -1;
    }
    return 0;
}

/* `job` is what the worker runs now: its output carries the job's id from here on. */
static void start_running(worker_t *w, job_t *job, uint32_t seq)
{
    w->state = W_BUSY;
    w->job = job;
    w->seq_running = seq;
    if (job->started_ns == 0)
        job->started_ns = uv_hrtime();
    snprintf(w->last_id, sizeof(w->last_id), "%s", job->id);
    w->output_bytes = 0;
    w->output_cut = false;
}

void channel_send_u32(worker_t *w, uint32_t type, uint32_t value)
{
    buf_t head = BUF_INIT;
    size_t start = proto_frame_begin(&head, type);
    proto_put_u32(&head, value);
    proto_frame_end(&head, start, 0);
    if (channel_send(w, &head, NULL, 0, NULL) < 0)
        log_msg(LOG_WARN, "cannot write to worker %d", (int)w->pid);
}

/* A prefetched job keeps its body, since it may have to go to another worker after
 * all; one to run now gives its body to the write. */
void channel_send_call(worker_t *w, job_t *job, call_kind_t kind)
{
    bool prefetched = kind == CALL_PREFETCH;
    buf_t head = BUF_INIT;
    size_t start = proto_frame_begin(&head, PROTO_MSG_CALL);
    proto_put_bytes(&head, job->id, strlen(job->id));
    double ms = job->timeout * 1000.0;
    proto_put_u32(&head, ms > CALL_TIMEOUT_MS_MAX ? CALL_TIMEOUT_MS_MAX : (uint32_t)ms);
    uint32_t seq = ++w->seq_sent;
    proto_put_u32(&head, seq);
    uint32_t flags = prefetched ? PROTO_CALL_PREFETCHED : kind == CALL_TASK ? PROTO_CALL_TASK : 0;
    if (job->head.len)
        flags |= PROTO_CALL_HTTP;
    proto_put_u32(&head, flags);
    buf_append(&head, job->head.data ? job->head.data : "", job->head.len);
    proto_frame_end(&head, start, job->body.len);

    job->worker = w;
    /* A task is never taken back: it needs no gate slot. (Up to --async-slots of them
     * may be unread at once, more than the gate's slots.) */
    if (kind != CALL_TASK)
        gate_open(w->gate, seq);
    if (prefetched) {
        w->prefetched = job;
        w->next_seq = seq;
        w->prefetch_used = true;
    } else if (kind == CALL_TASK) {
        tasks_add(w, job, seq);
    } else {
        start_running(w, job, seq);
    }
    if (channel_send(w, &head, job->body.data, job->body.len, prefetched ? NULL : &job->body) < 0) {
        log_msg(LOG_WARN, "req=%s: cannot write to worker %d", job->id, (int)w->pid);
        worker_lost_job(w, "worker channel broken");
        worker_kill(w, "worker channel broken");
    }
}

/* ------------------------------------------------------------ receiving ---- */

void channel_answer(job_t *job, const result_t *res, pid_t pid, bool memory)
{
    if (res->body_len > pool.config->max_body) {
        char msg[160];
        snprintf(msg, sizeof(msg), "response body too large: %u bytes, the limit is %zu",
                 res->body_len, pool.config->max_body);
        finish_job_error(job, 500, msg, "error", pid);
        return;
    }
    const char *outcome = res->status < 500 ? "ok" : memory ? "memory" : "error";
    job_answer_t a = {(int)res->status,
                      res->headers.data ? res->headers.data : "",
                      res->headers.len,
                      (const char *)res->body,
                      res->body_len,
                      outcome,
                      pid,
                      0};
    job_answer(job, &a);
    job_free(job);
}

bool channel_recycle_due(worker_t *w, uint32_t res_flags)
{
    w->executions++;
    bool memory = (res_flags & PROTO_RESULT_RECYCLE) != 0;
    if (!memory && !(w->recycle_after > 0 && w->executions >= w->recycle_after))
        return false;
    w->replaced_for = memory ? METRICS_REPLACED_MEMORY : METRICS_REPLACED_RECYCLE;
    if (!memory && !w->draining)
        log_msg(LOG_INFO, "worker %d served %ld executions (--max-requests): replacing it",
                (int)w->pid, w->executions);
    return true;
}

/* The worker sent what it must not: it goes, and what it ran with it. */
static void replace_worker(worker_t *w, const char *what)
{
    w->replaced_for = METRICS_REPLACED_PROTOCOL;
    worker_lost_job(w, what);
    worker_kill(w, what);
    pool_maintain();
}

/* The worker's answer for its running job (result.c checks it). */
static void handle_result(worker_t *w, const proto_frame_t *f)
{
    result_t res;
    const char *bad = result_parse(f->payload, f->length, &res);
    task_t *task = NULL;
    if (bad == NULL && !(w->job && res.seq == w->seq_running) &&
        (task = tasks_find(w, res.seq)) == NULL)
        bad = "not for a running execution";
    if (bad) {
        result_free(&res);
        log_msg(LOG_WARN, "req=%s: worker %d sent a malformed answer (%s); replacing it",
                w->job ? w->job->id : "-", (int)w->pid, bad);
        job_t *job = w->job;
        if (job) { /* its own answer was bad: an error, not a crash */
            output_end_execution(w, false);
            w->job = NULL;
            job->worker = NULL;
            finish_job_error(job, 500, "worker sent an invalid response", "error", w->pid);
        }
        replace_worker(w, "worker sent an invalid response");
        return;
    }
    if (task) {
        tasks_result(w, task, &res);
        result_free(&res);
        return;
    }
    job_t *job = w->job;

    /* Reading the pipes costs two syscalls: only when the worker says Python wrote to
     * them. (Output of C code or children still in a pipe is read on its own event,
     * under this id unless the worker has started its next execution by then.) In v5
     * always, and while w->job is still set: what the execution wrote goes into its log
     * file before the answer leaves (the executor reads the file as soon as it has the
     * answer). */
    output_end_execution(w, (res.flags & PROTO_RESULT_OUTPUT) || job->contract == CONTRACT_V5);
    w->job = NULL;
    job->worker = NULL;
    w->answered = true;
    backoff_answered(&pool.backoff, job->target);
    tasks_learn(job->target, res.flags);

    /* The worker's next state first: its GO goes out before the client's answer is
     * written, so it starts what is behind meanwhile. (The answer does not re-enter the
     * pool: a request pipelined behind it waits for the next loop turn, http.c.) */
    pid_t pid = w->pid;
    bool memory = (res.flags & PROTO_RESULT_RECYCLE) != 0;
    if (channel_recycle_due(w, res.flags)) {
        /* The worker exits after such an answer; closing the channel makes sure. */
        w->state = W_DYING;
        w->expected_exit = true;
        requeue_prefetched(w, "worker recycled");
        channel_close(w);
    } else {
        /* Its output read, a worker that waits for GO may start what is behind. */
        if ((res.flags & PROTO_RESULT_OUTPUT) && w->prefetch_used)
            channel_send_u32(w, PROTO_MSG_GO, w->seq_sent);
        w->prefetch_used = false;
        if (w->prefetched) {
            start_running(w, w->prefetched, w->next_seq);
            w->prefetched = NULL;
        } else {
            w->state = W_IDLE;
        }
    }
    channel_answer(job, &res, pid, memory);
    result_free(&res);
    dispatch();
    pool_maintain();
}

/* A context.log / context.error line. It belongs to the running execution when its
 * seq says so; a thread of user code may log after its execution answered: that line
 * goes to pyrt's log, under the last id. -1 when the frame is malformed. */
static int handle_log(worker_t *w, const proto_frame_t *f)
{
    proto_text_t frame;
    if (proto_get_text(f->payload, f->length, &frame) < 0 || frame.stream > EXECLOG_ERRORS)
        return -1;
    uint32_t stream = frame.stream, len = frame.len;
    const uint8_t *text = frame.text;
    frame_owner_t o;
    tasks_frame_owner(w, frame.seq, &o);
    if (*o.bytes >= OUTPUT_CAP_PER_EXEC)
        return 0; /* the cap is logged by output.c */
    *o.bytes += len;
    job_t *job = o.job;
    if (job && w->state == W_BUSY && job->contract == CONTRACT_V5 && job->log.id[0]) {
        execlog_line(&job->log, (execlog_stream_t)stream, (const char *)text, len);
        return 0;
    }
    const char *name = stream == EXECLOG_ERRORS ? "context.error" : "context.log";
    size_t cut = len > OUTPUT_LINE_MAX ? OUTPUT_LINE_MAX : len;
    if (pool.output_sink) {
        pool.output_sink(name, (const char *)text, cut);
        return 0;
    }
    log_output("worker", w->pid, o.id, name, (const char *)text, cut);
    return 0;
}

static void handle_frame(worker_t *w, const proto_frame_t *f)
{
    if (w->state == W_DYING)
        return;
    switch (f->type) {
    case PROTO_MSG_READY:
        if (w->state == W_SPAWNING) {
            /* The worker's channel can beat the zygote's: it is ready once its pid is
             * known (an unknown child of ours looks like an orphan to kill_orphans). */
            w->ready_early = true;
            return;
        }
        if (w->state == W_STARTING) {
            w->state = W_IDLE;
            log_msg(LOG_DEBUG, "worker %d ready", (int)w->pid);
            call_ready_hook();
            dispatch();
            return;
        }
        break;
    case PROTO_MSG_RESULT:
        if (w->state == W_BUSY) {
            handle_result(w, f);
            return;
        }
        break;
    case PROTO_MSG_OUTPUT:
        if (w->tasks_mode && tasks_output(w, f) == 0)
            return;
        break;
    case PROTO_MSG_CANCELLED:
        if (w->tasks_mode && tasks_cancel_read(w, f) == 0)
            return;
        break;
    case PROTO_MSG_LOG:
        if (w->state != W_SPAWNING && w->state != W_STARTING && handle_log(w, f) == 0)
            return;
        break;
    default: break;
    }
    log_msg(LOG_WARN, "worker %d sent an unexpected frame (type %u); replacing it", (int)w->pid,
            f->type);
    replace_worker(w, "worker sent an invalid frame to the master");
}

static void process_frames(worker_t *w)
{
    proto_frame_t f;
    int rc;
    while (w->chan_open && (rc = proto_decoder_next(&w->dec, &f)) == 1) {
        handle_frame(w, &f);
        proto_decoder_pop(&w->dec, &f);
    }
    /* A dying worker (already being replaced) keeps its channel until it exits: the same
     * oversized header must not be reported, and the worker killed, again. */
    if (w->chan_open && rc < 0 && w->state != W_DYING) {
        log_msg(LOG_WARN, "worker %d sent a frame over the size limit; replacing it", (int)w->pid);
        replace_worker(w, "worker sent an answer over the size limit");
    }
}

static void on_grace_over(uv_timer_t *t)
{
    worker_t *w = t->data;
    /* Timers run before signals in a loop turn: on a loaded machine its exit may be
     * waiting to be reaped, and its own status is the better answer. (The worker is
     * freed only in a later turn, by its handles' close callbacks.) */
    pool_reap();
    if (!w->exited && w->pid > 0) {
        log_msg(LOG_WARN, "worker %d closed its channel but did not exit; killing it", (int)w->pid);
        worker_kill(w, "worker closed its channel to the master");
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    worker_t *w = s->data;
    if (n > 0) {
        proto_decoder_feed(&w->dec, b->base, (size_t)n);
        process_frames(w);
        return;
    }
    if (n == 0)
        return;
    /* EOF: the worker is exiting (its status comes with SIGCHLD) or closed fd of its
     * channel; if it is still alive after a grace period, kill it. */
    (void)uv_read_stop(s); /* always 0 */
    if (w->pid <= 0) {
        /* The zygote died before forking it. */
        w->state = W_DYING;
        worker_lost_job(w, "worker could not be started");
        worker_release(w);
        output_close(&w->out);
        output_close(&w->err);
        pool_maintain();
        return;
    }
    if (!w->exited)
        (void)uv_timer_start(&w->timer, on_grace_over, CHANNEL_EOF_GRACE_MS, 0);
}

void channel_close_expecting_exit(worker_t *w)
{
    channel_close(w);
    if (!w->exited && w->pid > 0)
        (void)uv_timer_start(&w->timer, on_grace_over, STOP_GRACE_MS, 0); /* it has a cb */
}

int channel_start(worker_t *w)
{
    return uv_read_start((uv_stream_t *)&w->chan, pool_alloc, on_read);
}

static void feed_channel(void *ctx, const char *data, size_t len)
{
    proto_decoder_feed(&((worker_t *)ctx)->dec, data, len);
}

/* A RESULT written just before the worker died, or before a deadline, still counts. */
void channel_drain(worker_t *w)
{
    if (!w->chan_open)
        return;
    read_available((uv_handle_t *)&w->chan, feed_channel, w);
    process_frames(w);
}
