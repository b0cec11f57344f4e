/* output.c -- a worker's stdout and stderr: read, cut into lines, capped per execution,
 * and routed: to the execution's log file (v5), to `pyrt run`'s sink, or to the log
 * tagged with the request id. */
#include <stdio.h>
#include <unistd.h>

#include "common/log.h"
#include "master/execlog.h"
#include "master/pool_internal.h"

void output_route(worker_t *w, job_t *job, const char *id, const char *stream, size_t *bytes,
                  bool *cut, const char *text, size_t len)
{
    if (*bytes >= OUTPUT_CAP_PER_EXEC) {
        if (!*cut) {
            *cut = true;
            log_msg(LOG_WARN, "req=%s: output cut after %d bytes (the limit per execution)", id,
                    OUTPUT_CAP_PER_EXEC);
        }
        return;
    }
    *bytes += len;
    if (job && job->contract == CONTRACT_V5 && job->log.id[0]) {
        execlog_native(&job->log, text, len); /* v5: the execution's own log file */
        return;
    }
    if (pool.output_sink) {
        pool.output_sink(stream, text, len);
        return;
    }
    log_output("worker", w->pid, id, stream, text, len);
}

/* A line from the pipes: the running execution's. A worker that runs tasks sends what
 * they print through sys.stdout/stderr as OUTPUT frames (tasks.c); what reaches its
 * pipes (C code, children, threads of the module) is the execution's while it runs
 * alone, else it cannot be told apart, and says so. */
static void emit(void *ctx, const char *text, size_t len)
{
    output_t *o = ctx;
    worker_t *w = o->worker;
    if (w->tasks_mode) {
        /* While one task runs alone, what is in the pipes is its own; once another has
         * joined, nothing is anybody's until the worker falls idle (tasks.c). */
        task_t *t = w->output_mixed ? NULL : tasks_sole(w);
        if (t)
            output_route(w, t->job, t->id, o->name, &t->output_bytes, &t->output_cut, text, len);
        else if (w->job && w->task_count == 0)
            output_route(w, w->job, w->job->id, o->name, &w->output_bytes, &w->output_cut, text,
                         len);
        else /* capped per worker, until it falls idle */
            output_route(w, NULL, "unattributed", o->name, &w->output_bytes, &w->output_cut, text,
                         len);
        return;
    }
    output_route(w, w->job, w->last_id[0] ? w->last_id : "-", o->name, &w->output_bytes,
                 &w->output_cut, text, len);
}

/* Bytes held back by on_output go first: they were read before anything later. */
static void feed(output_t *o, const char *data, size_t len)
{
    if (o->held.len) {
        buf_t held = o->held;
        buf_init(&o->held);
        lines_split(&o->partial, held.data, held.len, OUTPUT_LINE_MAX, emit, o);
        buf_free(&held);
    }
    if (len)
        lines_split(&o->partial, data, len, OUTPUT_LINE_MAX, emit, o);
}

static void feed_cb(void *ctx, const char *data, size_t len)
{
    feed(ctx, data, len);
}

static void on_output(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    output_t *o = s->data;
    worker_t *w = o->worker;
    if (n > 0 && w->prefetched && w->chan_open) {
        /* The worker may have moved on to its prefetched execution, whose output this
         * can be: its RESULT for the one before is then in the channel already (written
         * first). Read that first, so these bytes get the id of the execution that is
         * running now. */
        buf_append(&o->held, b->base, (size_t)n);
        channel_drain(w);
        feed(o, NULL, 0);
    } else if (n > 0) {
        feed(o, b->base, (size_t)n);
    } else if (n < 0) {
        output_close(o);
    }
}

static void on_closed(uv_handle_t *handle)
{
    output_t *o = handle->data;
    worker_handle_closed(o->worker);
}

int output_open(output_t *o, worker_t *w, const char *name, int fd)
{
    o->worker = w;
    o->name = name;
    buf_init(&o->partial);
    buf_init(&o->held);
    (void)uv_pipe_init(pool.loop, &o->pipe, 0); /* 0 on Unix: it only fills the handle */
    o->pipe.data = o;
    o->open = true;
    int rc = uv_pipe_open(&o->pipe, fd);
    if (rc != 0)
        (void)close(fd); /* not the handle's: libuv took it only on success */
    return rc;
}

int output_start(output_t *o)
{
    return uv_read_start((uv_stream_t *)&o->pipe, pool_alloc, on_output);
}

void output_drain(output_t *o)
{
    feed(o, NULL, 0);
    if (o->open)
        read_available((uv_handle_t *)&o->pipe, feed_cb, o);
}

void output_flush(output_t *o)
{
    lines_flush(&o->partial, emit, o);
}

void output_end_execution(worker_t *w, bool drain)
{
    if (drain) {
        output_drain(&w->out);
        output_drain(&w->err);
    }
    output_flush(&w->out);
    output_flush(&w->err);
}

void output_close(output_t *o)
{
    if (!o->open)
        return;
    o->open = false;
    feed(o, NULL, 0);
    output_flush(o);
    buf_free(&o->partial);
    uv_close((uv_handle_t *)&o->pipe, on_closed);
}
