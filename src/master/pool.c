/* pool.c -- the zygote, the workers, the queue and the deadlines (see pool.h). */
#include "master/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "master/execlog.h"
#include "master/proctree.h"
#include "master/queue.h"
#include "proto/gate.h"
#include "proto/proto.h"

#define OUTPUT_LINE_MAX (64 * 1024)        /* longer lines are split */
#define OUTPUT_CAP_PER_EXEC (1024 * 1024)  /* log bytes one execution may produce */
#define CHANNEL_EOF_GRACE_MS 200           /* EOF without exit: kill after this */
#define STOP_GRACE_MS 3000                 /* shutdown: SIGKILL what has not exited */
#define BACKOFF_BASE_MS 50
#define BACKOFF_CAP_MS 5000
#define UNCLAIMED_MAX 32
#define STORM_ANSWER_AT 2 /* a function's workers dead in a row before its requests get the error */
#define STORM_TARGETS 16
#define PREFETCH_MAX_BODY (256 * 1024)
#define SPAWN_FDS 4 /* channel, stdout, stderr, gate */

enum worker_state {
    W_SPAWNING, /* SPAWN sent, the zygote has not said the pid yet */
    W_STARTING, /* forked, READY not received */
    W_IDLE,
    W_BUSY,
    W_DYING,    /* killed or lost: waiting for exit and for its handles to close */
};

typedef struct output {
    uv_pipe_t pipe;
    worker_t *worker;
    const char *name; /* "stdout" or "stderr" */
    buf_t partial;    /* an unfinished line */
    buf_t held;       /* read, not yet attributed: the channel is read first (on_output) */
    bool open;
} output_t;

struct worker {
    unsigned id;
    pid_t pid;
    enum worker_state state;
    uv_pipe_t chan;
    uv_timer_t timer;
    output_t out, err;
    int open_handles;
    bool chan_open;
    proto_decoder_t dec;
    job_t *job;              /* the execution it runs (CALL seq_running) */
    job_t *prefetched;       /* sent behind it (CALL next_seq), not known to run */
    uint32_t seq_running;
    uint32_t next_seq;
    uint32_t seq_sent;       /* the last CALL's */
    bool prefetch_used;      /* a CALL went out behind `job`, taken back or not */
    gate_t *gate;            /* shared with the worker: who decides `next` (gate.h) */
    char last_id[REQID_MAX + 1]; /* tags output, also after the execution answered */
    size_t output_bytes;
    bool output_cut;
    bool exited;
    bool answered;           /* sent at least one RESULT */
    bool ready_early;        /* READY came before the zygote's SPAWNED (its pid) */
    bool expected_exit;      /* we killed or stopped it */
    const char *kill_reason; /* overrides the exit status in the answer */
    worker_t *prev, *next;
};

typedef struct call_write {
    uv_write_t req;
    buf_t head;
    buf_t body;
} call_write_t;

static uv_loop_t *loop;
static const serve_config_t *config;
static char **zygote_env;
static char **zygote_argv;

static struct {
    pid_t pid;
    uv_pipe_t chan;
    bool chan_open;
    bool ready;
    proto_decoder_t dec;
    unsigned failures;
    uv_timer_t restart_timer;
    char last_error[256];
} zygote;

static worker_t *workers;
static unsigned next_worker_id;
static job_queue_t queue;
static unsigned crash_streak;
static uv_timer_t backoff_timer;
static bool backoff_active;
static bool shutting_down;
static void (*shutdown_done)(void);
static uv_timer_t stop_timer;
static bool stopping;
static char last_worker_error[256];
static void (*ready_hook)(void);
static pool_output_fn output_sink;

/* Restart storms, per function: how many workers in a row died running it before
 * answering anything. During back-off, requests for a function at STORM_ANSWER_AT get
 * its last error at once; requests for other functions wait for the next worker. */
typedef struct storm {
    char target[sizeof(((job_t *)0)->target)];
    unsigned deaths;
    char error[256];
} storm_t;

static storm_t storms[STORM_TARGETS];
static unsigned storm_next;

static storm_t *storm_find(const char *target)
{
    for (unsigned i = 0; i < STORM_TARGETS; i++)
        if (storms[i].deaths && strcmp(storms[i].target, target) == 0)
            return &storms[i];
    return NULL;
}

static void storm_record(const char *target, const char *error)
{
    storm_t *st = storm_find(target);
    if (st == NULL) {
        st = &storms[storm_next];
        storm_next = (storm_next + 1) % STORM_TARGETS;
        snprintf(st->target, sizeof(st->target), "%s", target);
        st->deaths = 0;
    }
    st->deaths++;
    snprintf(st->error, sizeof(st->error), "%s", error);
}

static void storm_clear(const char *target)
{
    storm_t *st = storm_find(target);
    if (st)
        st->deaths = 0;
}

/* The error to answer a job with at once, or NULL to let it wait for a worker. */
static const char *storm_answer(const job_t *job)
{
    const storm_t *st = backoff_active ? storm_find(job->target) : NULL;
    return st && st->deaths >= STORM_ANSWER_AT ? st->error : NULL;
}

static struct {
    pid_t pid;
    int status;
} unclaimed[UNCLAIMED_MAX];
static unsigned unclaimed_next;

static void pool_maintain(void);
static void dispatch(void);
static void worker_exited(worker_t *w, int status);
static void start_zygote(void);

/* ------------------------------------------------------------ helpers ---- */

static void describe_exit(int status, char *out, size_t size)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *name = strsignal(sig);
        snprintf(out, size, "worker killed by signal %d (%s)", sig, name ? name : "unknown");
    } else if (WIFEXITED(status)) {
        snprintf(out, size, "worker exited with status %d", WEXITSTATUS(status));
    } else {
        snprintf(out, size, "worker stopped (wait status %d)", status);
    }
}

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

static void finish_job_error(job_t *job, int status, const char *message, const char *outcome,
                             pid_t pid)
{
    job_answer_error(job, status, message, outcome, pid);
    job_free(job);
}

static unsigned live_workers(void)
{
    unsigned n = 0;
    for (worker_t *w = workers; w; w = w->next)
        if (w->state != W_DYING)
            n++;
    return n;
}

static worker_t *find_worker_pid(pid_t pid)
{
    for (worker_t *w = workers; w; w = w->next)
        if (w->pid == pid)
            return w;
    return NULL;
}

/* ------------------------------------------------------ worker output ---- */

/* `pyrt run` learns once that executions can start, or that they never will. */
static void call_ready_hook(void)
{
    void (*hook)(void) = ready_hook;
    ready_hook = NULL;
    if (hook)
        hook();
}

static void emit_output(output_t *o, const char *text, size_t len)
{
    worker_t *w = o->worker;
    if (w->output_bytes >= OUTPUT_CAP_PER_EXEC) {
        if (!w->output_cut) {
            w->output_cut = true;
            log_msg(LOG_WARN, "req=%s: output cut after %d bytes (the limit per execution)",
                    w->last_id[0] ? w->last_id : "-", OUTPUT_CAP_PER_EXEC);
        }
        return;
    }
    w->output_bytes += len;
    if (w->job && w->job->contract == CONTRACT_V5 && w->job->log.id[0]) {
        execlog_native(&w->job->log, text, len); /* v5: the execution's own log file */
        return;
    }
    if (output_sink) {
        output_sink(o->name, text, len);
        return;
    }
    char prefix[REQID_MAX + 32];
    snprintf(prefix, sizeof(prefix), "req=%s %s: ", w->last_id[0] ? w->last_id : "-", o->name);
    log_write_as(LOG_INFO, "worker", w->pid, prefix, text, len);
}

static void output_consume(output_t *o, const char *data, size_t len)
{
    buf_append(&o->partial, data, len);
    size_t start = 0;
    for (;;) {
        const char *p = o->partial.data + start;
        size_t avail = o->partial.len - start;
        const char *nl = memchr(p, '\n', avail);
        size_t line = nl ? (size_t)(nl - p) : avail;
        if (line >= OUTPUT_LINE_MAX) { /* split a long line */
            emit_output(o, p, OUTPUT_LINE_MAX);
            start += OUTPUT_LINE_MAX;
            continue;
        }
        if (nl == NULL)
            break;
        emit_output(o, p, line);
        start += line + 1;
    }
    buf_consume(&o->partial, start);
}

/* An unfinished line is logged as it is: at the end of its execution (so it keeps that
 * execution's id) and when the pipe closes. */
static void output_flush(output_t *o)
{
    if (o->partial.len)
        emit_output(o, o->partial.data, o->partial.len);
    buf_clear(&o->partial);
}

static void worker_handle_closed(worker_t *w);

static void on_output_closed(uv_handle_t *handle)
{
    output_t *o = handle->data;
    worker_handle_closed(o->worker);
}

static void output_feed(output_t *o, const char *data, size_t len);

static void output_close(output_t *o)
{
    if (!o->open)
        return;
    o->open = false;
    output_feed(o, NULL, 0);
    output_flush(o);
    buf_free(&o->partial);
    uv_close((uv_handle_t *)&o->pipe, on_output_closed);
}

static char io_chunk[64 * 1024];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    *b = uv_buf_init(io_chunk, sizeof(io_chunk));
}

static void channel_drain(worker_t *w);

/* Bytes held back by on_output go first: they were read before anything later. */
static void output_feed(output_t *o, const char *data, size_t len)
{
    if (o->held.len) {
        buf_t held = o->held;
        buf_init(&o->held);
        output_consume(o, held.data, held.len);
        buf_free(&held);
    }
    if (len)
        output_consume(o, data, len);
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
        output_feed(o, NULL, 0);
    } else if (n > 0) {
        output_feed(o, b->base, (size_t)n);
    } else if (n < 0) {
        output_close(o);
    }
}

/* Reads what is already in a stream's fd, without waiting, handing each chunk to
 * feed: the reads libuv would do on the next turn, done now because order matters
 * (output before the answer it belongs to; a RESULT before the exit that follows it). */
static void read_available(uv_handle_t *h, void (*feed)(void *ctx, const char *data, size_t len),
                           void *ctx)
{
    uv_os_fd_t fd;
    if (uv_fileno(h, &fd) != 0)
        return;
    for (;;) {
        ssize_t n = read(fd, io_chunk, sizeof(io_chunk));
        if (n > 0)
            feed(ctx, io_chunk, (size_t)n);
        else if (n < 0 && errno == EINTR)
            continue;
        else
            break;
    }
}

static void feed_output(void *ctx, const char *data, size_t len)
{
    output_feed(ctx, data, len);
}

/* Everything written so far: what on_output held back, then what is in the pipe. */
static void output_drain(output_t *o)
{
    output_feed(o, NULL, 0);
    if (o->open)
        read_available((uv_handle_t *)&o->pipe, feed_output, o);
}

/* ------------------------------------------------------ worker life ---- */

static void worker_handle_closed(worker_t *w)
{
    if (--w->open_handles > 0)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        workers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    proto_decoder_free(&w->dec);
    if (w->gate)
        (void)munmap((void *)w->gate, GATE_SIZE);
    free(w);
    pool_maintain();
}

static void on_handle_closed(uv_handle_t *handle)
{
    worker_handle_closed(handle->data);
}

static void close_channel(worker_t *w)
{
    if (!w->chan_open)
        return;
    w->chan_open = false;
    uv_close((uv_handle_t *)&w->chan, on_handle_closed);
}

/* The worker is gone or going: close what can be closed now. The output pipes stay
 * open until EOF, since a child the execution started may still write. */
static void worker_release(worker_t *w)
{
    close_channel(w);
    if (!uv_is_closing((uv_handle_t *)&w->timer)) {
        uv_timer_stop(&w->timer);
        uv_close((uv_handle_t *)&w->timer, on_handle_closed);
    }
}

/* The worker will not run its prefetched execution (it is dying, or recycled): take it
 * back and put it first in the queue -- unless the gate says the worker had started
 * it, whose effects may then be half done: that one is answered like a crash. */
static void requeue_prefetched(worker_t *w, const char *what)
{
    job_t *job = w->prefetched;
    if (job == NULL)
        return;
    w->prefetched = NULL;
    job->worker = NULL;
    if (gate_cancel(w->gate, w->next_seq) == GATE_WON) {
        queue_push_front(&queue, job);
        return;
    }
    log_msg(LOG_WARN, "req=%s: %s", job->id, what);
    finish_job_error(job, 500, what, "crash", w->pid);
}

static void worker_kill(worker_t *w, const char *reason)
{
    requeue_prefetched(w, reason ? reason : "worker killed");
    if (w->pid > 0 && !w->exited)
        (void)proctree_kill(w->pid);
    if (reason && !w->kill_reason)
        w->kill_reason = reason;
    w->expected_exit = true;
    w->state = W_DYING;
    if (w->pid <= 0)
        worker_release(w); /* never forked: nothing to wait for */
}

static void job_lost_with_worker(worker_t *w, const char *what)
{
    requeue_prefetched(w, what);
    job_t *job = w->job;
    if (job == NULL)
        return;
    w->job = NULL;
    job->worker = NULL;
    log_msg(LOG_WARN, "req=%s: %s", job->id, what);
    finish_job_error(job, 500, what, "crash", w->pid);
}

static void handle_result(worker_t *w, const proto_frame_t *f);

/* A context.log / context.error line. It belongs to the running execution when its
 * seq says so; a thread of user code may log after its execution answered: that line
 * goes to pyrt's log, under the last id. -1 when the frame is malformed. */
static int handle_log(worker_t *w, const proto_frame_t *f)
{
    proto_reader_t r;
    proto_reader_init(&r, f->payload, f->length);
    uint32_t seq = proto_get_u32(&r);
    uint32_t stream = proto_get_u32(&r);
    uint32_t len;
    const uint8_t *text = proto_get_bytes(&r, &len);
    if (r.error || r.left != 0 || stream > EXECLOG_ERRORS)
        return -1;
    if (w->output_bytes >= OUTPUT_CAP_PER_EXEC)
        return 0; /* the cap is logged by emit_output */
    w->output_bytes += len;
    job_t *job = w->job;
    if (job && w->state == W_BUSY && seq == w->seq_running && job->contract == CONTRACT_V5 &&
        job->log.id[0]) {
        execlog_line(&job->log, (execlog_stream_t)stream, (const char *)text, len);
        return 0;
    }
    const char *name = stream == EXECLOG_ERRORS ? "context.error" : "context.log";
    size_t cut = len > OUTPUT_LINE_MAX ? OUTPUT_LINE_MAX : len;
    if (output_sink) {
        output_sink(name, (const char *)text, cut);
        return 0;
    }
    char prefix[REQID_MAX + 32];
    snprintf(prefix, sizeof(prefix), "req=%s %s: ", w->last_id[0] ? w->last_id : "-", name);
    log_write_as(LOG_INFO, "worker", w->pid, prefix, (const char *)text, cut);
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
        if (w->state == W_BUSY && w->job) {
            handle_result(w, f);
            return;
        }
        break;
    case PROTO_MSG_LOG:
        if (w->state != W_SPAWNING && w->state != W_STARTING && handle_log(w, f) == 0)
            return;
        break;
    default:
        break;
    }
    log_msg(LOG_WARN, "worker %d sent an unexpected frame (type %u); replacing it", (int)w->pid,
            f->type);
    job_lost_with_worker(w, "worker sent an invalid frame to the master");
    worker_kill(w, "worker sent an invalid frame to the master");
    pool_maintain();
}

static void process_frames(worker_t *w)
{
    proto_frame_t f;
    int rc;
    while (w->chan_open && (rc = proto_decoder_next(&w->dec, &f)) == 1) {
        handle_frame(w, &f);
        proto_decoder_pop(&w->dec, &f);
    }
    if (w->chan_open && rc < 0) {
        log_msg(LOG_WARN, "worker %d sent a frame over the size limit; replacing it", (int)w->pid);
        job_lost_with_worker(w, "worker sent an answer over the size limit");
        worker_kill(w, "worker sent an answer over the size limit");
        pool_maintain();
    }
}

static void on_channel_grace(uv_timer_t *t)
{
    worker_t *w = t->data;
    if (!w->exited && w->pid > 0) {
        log_msg(LOG_WARN, "worker %d closed its channel but did not exit; killing it", (int)w->pid);
        worker_kill(w, "worker closed its channel to the master");
    }
}

static void on_channel_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
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
    uv_read_stop(s);
    if (w->pid <= 0) {
        /* The zygote died before forking it. */
        w->state = W_DYING;
        job_lost_with_worker(w, "worker could not be started");
        worker_release(w);
        output_close(&w->out);
        output_close(&w->err);
        pool_maintain();
        return;
    }
    if (!w->exited)
        uv_timer_start(&w->timer, on_channel_grace, CHANNEL_EOF_GRACE_MS, 0);
}

static void feed_channel(void *ctx, const char *data, size_t len)
{
    proto_decoder_feed(&((worker_t *)ctx)->dec, data, len);
}

/* Frames already in the channel when the worker exited: a RESULT written just before
 * it died still counts. */
static void channel_drain(worker_t *w)
{
    if (!w->chan_open)
        return;
    read_available((uv_handle_t *)&w->chan, feed_channel, w);
    process_frames(w);
}

/* A worker died: what its executions started was reparented to us. A worker being
 * spawned is our child too, before the zygote tells its pid: wait for that. */
static bool orphans_pending;

static void kill_orphans(void)
{
    orphans_pending = true;
    for (worker_t *w = workers; w; w = w->next)
        if (w->pid <= 0 && w->state != W_DYING)
            return;
    orphans_pending = false;
    pid_t keep[256];
    int n = 0;
    if (zygote.pid > 0)
        keep[n++] = zygote.pid;
    for (worker_t *w = workers; w && n < 256; w = w->next)
        if (w->pid > 0 && !w->exited)
            keep[n++] = w->pid;
    int killed = proctree_kill_orphans(keep, n);
    if (killed > 0)
        log_msg(LOG_INFO, "killed %d process%s left behind by a worker that exited", killed,
                killed == 1 ? "" : "es");
}

static void worker_exited(worker_t *w, int status)
{
    w->exited = true;
    channel_drain(w);
    output_drain(&w->out);
    output_drain(&w->err);
    char what[128];
    if (w->kill_reason)
        snprintf(what, sizeof(what), "%s", w->kill_reason);
    else
        describe_exit(status, what, sizeof(what));
    if (!w->expected_exit) {
        /* Only a worker that never answered anything counts toward a restart storm: one
         * that served and then died on one execution says nothing about the next. */
        if (!w->answered) {
            crash_streak++;
            if (w->job)
                storm_record(w->job->target, what);
        }
        snprintf(last_worker_error, sizeof(last_worker_error), "%s", what);
        log_msg(LOG_WARN, "worker %d: %s", (int)w->pid, what);
    } else {
        log_msg(LOG_DEBUG, "worker %d: %s", (int)w->pid, what);
    }
    job_lost_with_worker(w, what);
    w->state = W_DYING;
    worker_release(w);
    pool_maintain();
    /* After the replacement's spawn: the walk of /proc takes milliseconds. */
    kill_orphans();
}

static int send_spawn(unsigned id, int fds[SPAWN_FDS])
{
    buf_t frame = BUF_INIT;
    size_t start = proto_frame_begin(&frame, PROTO_MSG_SPAWN);
    proto_put_u32(&frame, id);
    proto_frame_end(&frame, start, 0);

    union {
        char space[CMSG_SPACE(SPAWN_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec iov = {frame.data, frame.len};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof(control.space);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(SPAWN_FDS * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, SPAWN_FDS * sizeof(int));

    uv_os_fd_t zfd;
    int rc = uv_fileno((uv_handle_t *)&zygote.chan, &zfd);
    if (rc == 0) {
        ssize_t n;
        do
            n = sendmsg(zfd, &msg, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        rc = n == (ssize_t)frame.len ? 0 : -1;
    }
    buf_free(&frame);
    return rc;
}

static int open_pipe(uv_pipe_t *p, int fd, void *data)
{
    uv_pipe_init(loop, p, 0);
    p->data = data;
    return uv_pipe_open(p, fd);
}

/* A worker's gate page (proto/gate.h): a memfd, mapped here; the fd goes to the
 * worker, which maps it too. -1 with errno. */
static int gate_create(gate_t **gate)
{
    int fd = memfd_create("pyrt-gate", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    void *page = MAP_FAILED;
    if (ftruncate(fd, GATE_SIZE) == 0)
        page = mmap(NULL, GATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (page == MAP_FAILED) {
        int saved = errno;
        (void)close(fd);
        errno = saved;
        return -1;
    }
    *gate = page;
    return fd;
}

static void worker_spawn(void)
{
    int chan[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    gate_t *gate = NULL;
    int gate_fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) != 0 ||
        pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
        (gate_fd = gate_create(&gate)) < 0) {
        log_msg(LOG_ERROR, "cannot create a worker's channel, pipes or gate: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            if (chan[i] >= 0) (void)close(chan[i]);
            if (out[i] >= 0) (void)close(out[i]);
            if (err[i] >= 0) (void)close(err[i]);
        }
        return;
    }
    worker_t *w = xcalloc(1, sizeof(*w));
    w->gate = gate;
    w->id = ++next_worker_id;
    w->state = W_SPAWNING;
    proto_decoder_init(&w->dec, (uint32_t)(config->max_body + 1024 * 1024));
    w->out.worker = w->err.worker = w;
    w->out.name = "stdout";
    w->err.name = "stderr";
    buf_init(&w->out.partial);
    buf_init(&w->err.partial);
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    open_pipe(&w->chan, chan[0], w);
    open_pipe(&w->out.pipe, out[0], &w->out);
    open_pipe(&w->err.pipe, err[0], &w->err);
    w->chan_open = w->out.open = w->err.open = true;
    w->open_handles = 4;
    /* The pipes' handle data is the output_t; on_handle_closed needs the worker. */
    w->out.pipe.data = &w->out;
    w->err.pipe.data = &w->err;
    w->next = workers;
    if (workers)
        workers->prev = w;
    workers = w;

    int child_fds[SPAWN_FDS] = {chan[1], out[1], err[1], gate_fd};
    int rc = send_spawn(w->id, child_fds);
    for (int i = 0; i < SPAWN_FDS; i++)
        (void)close(child_fds[i]);
    uv_read_start((uv_stream_t *)&w->chan, on_alloc, on_channel_read);
    uv_read_start((uv_stream_t *)&w->out.pipe, on_alloc, on_output);
    uv_read_start((uv_stream_t *)&w->err.pipe, on_alloc, on_output);
    if (rc != 0) {
        /* The zygote is gone (its exit is on its way as SIGCHLD): no more spawns until a
         * new one says it is ready, or this would retry in a loop. */
        log_msg(LOG_ERROR, "cannot send a spawn request to the zygote: %s", strerror(errno));
        zygote.ready = false;
        worker_kill(w, "the zygote is unreachable");
        output_close(&w->out);
        output_close(&w->err);
    }
}

/* ------------------------------------------------------------ results ---- */

static bool is_token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool header_name_ok(const uint8_t *name, uint32_t len)
{
    if (len == 0 || len > 256)
        return false;
    for (uint32_t i = 0; i < len; i++)
        if (!is_token_char(name[i]))
            return false;
    static const char *const reserved[] = {"content-length", "transfer-encoding", "connection",
                                           "x-request-id"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strlen(reserved[i]) == len && strncasecmp((const char *)name, reserved[i], len) == 0)
            return false;
    return true;
}

static bool header_value_ok(const uint8_t *value, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
            return false;
    return true;
}

/* The worker's answer. Everything in it is checked: user code can write to the
 * channel, so a worker is trusted with nothing that could break the client's framing. */
static void send_go(worker_t *w, uint32_t seq);
static void start_running(worker_t *w, job_t *job, uint32_t seq);

static void handle_result(worker_t *w, const proto_frame_t *f)
{
    job_t *job = w->job;
    proto_reader_t r;
    proto_reader_init(&r, f->payload, f->length);
    uint32_t seq = proto_get_u32(&r);
    uint32_t status = proto_get_u32(&r);
    uint32_t flags = proto_get_u32(&r);
    uint32_t count = proto_get_u32(&r);
    buf_t headers = BUF_INIT;
    bool valid = !r.error && seq == w->seq_running && status >= 200 && status <= 599 &&
                 count <= 1000;
    for (uint32_t i = 0; valid && i < count; i++) {
        uint32_t nlen, vlen;
        const uint8_t *name = proto_get_bytes(&r, &nlen);
        const uint8_t *value = proto_get_bytes(&r, &vlen);
        if (r.error || !header_name_ok(name, nlen) || !header_value_ok(value, vlen)) {
            valid = false;
            break;
        }
        buf_append(&headers, name, nlen);
        buf_append(&headers, ": ", 2);
        buf_append(&headers, value, vlen);
        buf_append(&headers, "\r\n", 2);
    }
    uint32_t body_len = 0;
    const uint8_t *body = valid ? proto_get_bytes(&r, &body_len) : NULL;
    valid = valid && !r.error && r.left == 0;

    /* Reading the pipes costs two syscalls: only when the worker says Python wrote to
     * them. (Output of C code or children still in a pipe is read on its own event,
     * under this id unless the worker has started its next execution by then.) In v5
     * always, and while w->job is still set: what the execution wrote goes into its log
     * file before the answer leaves (the executor reads the file as soon as it has the
     * answer). */
    if ((flags & PROTO_RESULT_OUTPUT) || job->contract == CONTRACT_V5) {
        output_drain(&w->out);
        output_drain(&w->err);
    }
    output_flush(&w->out);
    output_flush(&w->err);
    w->job = NULL;
    job->worker = NULL;
    if (!valid) {
        buf_free(&headers);
        log_msg(LOG_WARN, "req=%s: worker %d sent a malformed answer; replacing it", job->id,
                (int)w->pid);
        finish_job_error(job, 500, "worker sent an invalid response", "error", w->pid);
        worker_kill(w, "worker sent an invalid response");
        pool_maintain();
        return;
    }
    crash_streak = 0;
    w->answered = true;
    storm_clear(job->target);

    /* The worker's next state before the answer leaves: a request pipelined behind
     * this one is submitted while the answer is written, and must find the worker
     * free. */
    pid_t pid = w->pid;
    if (flags & PROTO_RESULT_RECYCLE) {
        /* The worker exits after such an answer; closing the channel makes sure. */
        w->state = W_DYING;
        w->expected_exit = true;
        requeue_prefetched(w, "worker recycled");
        close_channel(w);
    } else {
        /* Its output read, a worker that waits for GO may start what is behind. */
        if ((flags & PROTO_RESULT_OUTPUT) && w->prefetch_used)
            send_go(w, w->seq_sent);
        w->prefetch_used = false;
        if (w->prefetched) {
            start_running(w, w->prefetched, w->next_seq);
            w->prefetched = NULL;
        } else {
            w->state = W_IDLE;
        }
    }

    if (body_len > config->max_body) {
        char msg[160];
        snprintf(msg, sizeof(msg), "response body too large: %u bytes, the limit is %zu",
                 body_len, config->max_body);
        finish_job_error(job, 500, msg, "error", pid);
    } else {
        job_answer_t a = {(int)status, headers.data ? headers.data : "", headers.len,
                          (const char *)body, body_len, status < 500 ? "ok" : "error", pid};
        job_answer(job, &a);
        job_free(job);
    }
    buf_free(&headers);
    dispatch();
    pool_maintain();
}

/* ----------------------------------------------------------- dispatch ---- */

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
    snprintf(w->last_id, sizeof(w->last_id), "%s", job->id);
    w->output_bytes = 0;
    w->output_cut = false;
}

static void send_go(worker_t *w, uint32_t seq)
{
    buf_t head = BUF_INIT;
    size_t start = proto_frame_begin(&head, PROTO_MSG_GO);
    proto_put_u32(&head, seq);
    proto_frame_end(&head, start, 0);
    if (channel_send(w, &head, NULL, 0, NULL) < 0)
        log_msg(LOG_WARN, "cannot write to worker %d", (int)w->pid);
}

/* Sends the job to the worker: to run now (the worker is idle), or prefetched behind
 * the execution it runs (see proto/gate.h). A prefetched job keeps its body, since it
 * may have to go to another worker after all. */
static void send_call(worker_t *w, job_t *job, bool prefetched)
{
    buf_t head = BUF_INIT;
    size_t start = proto_frame_begin(&head, PROTO_MSG_CALL);
    proto_put_bytes(&head, job->id, strlen(job->id));
    double ms = job->timeout * 1000.0;
    proto_put_u32(&head, ms > 4e9 ? 4000000000u : (uint32_t)ms);
    uint32_t seq = ++w->seq_sent;
    proto_put_u32(&head, seq);
    uint32_t flags = prefetched ? PROTO_CALL_PREFETCHED : 0;
    if (job->head.len)
        flags |= PROTO_CALL_HTTP;
    proto_put_u32(&head, flags);
    buf_append(&head, job->head.data ? job->head.data : "", job->head.len);
    proto_frame_end(&head, start, job->body.len);

    job->worker = w;
    gate_open(w->gate, seq);
    if (prefetched) {
        w->prefetched = job;
        w->next_seq = seq;
        w->prefetch_used = true;
    } else {
        start_running(w, job, seq);
    }
    if (channel_send(w, &head, job->body.data, job->body.len,
                     prefetched ? NULL : &job->body) < 0) {
        log_msg(LOG_WARN, "req=%s: cannot write to worker %d", job->id, (int)w->pid);
        job_lost_with_worker(w, "worker channel broken");
        worker_kill(w, "worker channel broken");
    }
}

static worker_t *idle_worker(void)
{
    for (worker_t *w = workers; w; w = w->next)
        if (w->state == W_IDLE)
            return w;
    return NULL;
}

/* A prefetched job that waits behind a busy worker, taken back so an idle one runs
 * it now. NULL when there is none, or each one has started meanwhile. */
static job_t *take_back_prefetched(void)
{
    for (worker_t *w = workers; w; w = w->next) {
        job_t *job = w->prefetched;
        if (job == NULL || gate_cancel(w->gate, w->next_seq) != GATE_WON)
            continue;
        w->prefetched = NULL;
        job->worker = NULL;
        return job;
    }
    return NULL;
}

static void dispatch(void)
{
    worker_t *w;
    while (queue.length > 0 && (w = idle_worker()) != NULL)
        send_call(w, queue_pop(&queue), false);
    while ((w = idle_worker()) != NULL) {
        job_t *job = take_back_prefetched();
        if (job == NULL)
            break;
        send_call(w, job, false);
    }
    /* Still waiting, and no worker idle: each busy worker gets the next one now, so it
     * goes straight on to it. Large bodies wait in the queue: prefetching saves a
     * wake-up, which does not matter next to them, and keeps a copy. */
    for (w = workers; w && queue.length > 0; w = w->next) {
        if (w->state == W_BUSY && !w->prefetch_used && w->chan_open &&
            queue.head->body.len <= PREFETCH_MAX_BODY)
            send_call(w, queue_pop(&queue), true);
    }
    pool_maintain();
}

static void on_deadline(uv_timer_t *t)
{
    job_t *job = t->data;
    char secs[32], msg[96];
    format_seconds(job->timeout, secs, sizeof(secs));
    if (job->contract == CONTRACT_V5)
        snprintf(msg, sizeof(msg), "Execution timed out."); /* open-runtimes' words */
    else
        snprintf(msg, sizeof(msg), "Execution timed out after %s seconds", secs);
    pid_t pid = 0;
    if (job->worker) {
        /* An answer already in the channel beat the deadline; and a prefetched job may
         * have become the running one. */
        channel_drain(job->worker);
        if (uv_is_closing((uv_handle_t *)&job->deadline))
            return; /* answered */
    }
    if (job->worker && job->worker->prefetched == job) {
        worker_t *w = job->worker;
        if (gate_cancel(w->gate, w->next_seq) == GATE_WON) {
            w->prefetched = NULL; /* it never started: the worker will skip it */
            job->worker = NULL;
        } else {
            /* It started just now: the answer before it is in the channel by now. */
            channel_drain(w);
            if (uv_is_closing((uv_handle_t *)&job->deadline))
                return;
        }
        if (job->worker == w && w->prefetched == job) {
            /* Started, yet its predecessor's answer is not in: the gate was written
             * by user code. That worker goes, and what it ran with it. */
            log_msg(LOG_WARN, "req=%s: worker %d started it out of turn; killing it", job->id,
                    (int)w->pid);
            w->prefetched = NULL;
            job->worker = NULL;
            job_lost_with_worker(w, "worker broke the execution order");
            worker_kill(w, "worker broke the execution order");
        }
    }
    if (job->queued) {
        queue_remove(&queue, job);
    } else if (job->worker) {
        worker_t *w = job->worker;
        pid = w->pid;
        if (job->contract == CONTRACT_V5) {
            /* What it printed before its deadline belongs in its log file. */
            output_drain(&w->out);
            output_drain(&w->err);
            output_flush(&w->out);
            output_flush(&w->err);
        }
        w->job = NULL;
        job->worker = NULL;
        log_msg(LOG_WARN, "req=%s: timed out after %s s; killing worker %d", job->id, secs,
                (int)pid);
        /* The worker itself is SIGKILLed at once (it may be burning a CPU the
         * replacement needs); then the answer, the replacement's spawn, and only then
         * the walk of /proc for what the worker started (milliseconds), so that
         * neither the client nor the next executions wait for it. */
        if (pid > 0 && !w->exited)
            (void)kill(pid, SIGKILL);
        requeue_prefetched(w, "worker killed at a deadline");
        w->state = W_DYING;
        finish_job_error(job, 500, msg, "timeout", pid);
        pool_maintain();
        worker_kill(w, "killed at its execution's deadline");
        return;
    }
    finish_job_error(job, 500, msg, "timeout", pid);
    pool_maintain();
}

/* Executions waiting for a worker: queued, or prefetched behind a busy one. */
static size_t waiting(void)
{
    size_t n = queue.length;
    for (worker_t *w = workers; w; w = w->next)
        n += w->prefetched != NULL;
    return n;
}

void pool_submit(job_t *job)
{
    double ms = job->timeout * 1000.0;
    uint64_t delay = ms > 1e12 ? (uint64_t)1e12 : (uint64_t)(ms + 0.999);
    uv_timer_start(&job->deadline, on_deadline, delay ? delay : 1, 0);

    /* A function that keeps killing its workers before they answer: its error now. */
    const char *storm = storm_answer(job);
    if (storm) {
        finish_job_error(job, 500, storm, "crash", 0);
        return;
    }
    worker_t *w = idle_worker();
    if (w && queue.length == 0) {
        send_call(w, job, false);
        return;
    }
    if (live_workers() == 0) {
        /* The zygote keeps dying before it is ready: say why now, not at the deadline. */
        if (!zygote.ready && zygote.failures >= 2) {
            finish_job_error(job, 500, zygote.last_error, "crash", 0);
            return;
        }
    }
    if (waiting() >= (size_t)config->max_queue) {
        finish_job_error(job, 503, "Server busy", "busy", 0);
        return;
    }
    queue_push(&queue, job);
    dispatch(); /* a busy worker may take it as its next */
}

void pool_job_detach(job_t *job)
{
    job->client = NULL;
    if (job->queued) {
        queue_remove(&queue, job);
        job_free(job);
        pool_maintain();
    }
}

bool pool_ready(void)
{
    if (shutting_down)
        return false;
    for (worker_t *w = workers; w; w = w->next)
        if (w->state == W_IDLE || w->state == W_BUSY)
            return true;
    return false;
}

const char *pool_not_ready_reason(void)
{
    if (shutting_down)
        return "shutting down";
    if (!zygote.ready && zygote.last_error[0])
        return zygote.last_error;
    if (last_worker_error[0] && crash_streak > 0)
        return last_worker_error;
    return "workers are starting";
}

/* ------------------------------------------------------------- zygote ---- */

static unsigned backoff_ms(unsigned failures)
{
    if (failures <= 1)
        return 0;
    unsigned ms = BACKOFF_BASE_MS;
    for (unsigned i = 2; i < failures && ms < BACKOFF_CAP_MS; i++)
        ms *= 2;
    return ms < BACKOFF_CAP_MS ? ms : BACKOFF_CAP_MS;
}

static void on_spawned(const proto_frame_t *f)
{
    proto_reader_t r;
    proto_reader_init(&r, f->payload, f->length);
    unsigned id = proto_get_u32(&r);
    pid_t pid = (pid_t)proto_get_u32(&r);
    uint32_t elen;
    const uint8_t *error = proto_get_bytes(&r, &elen);
    worker_t *w = NULL;
    for (worker_t *x = workers; x; x = x->next)
        if (x->id == id)
            w = x;
    if (r.error || w == NULL) {
        log_msg(LOG_ALERT, "zygote sent SPAWNED for unknown worker %u", id);
        return;
    }
    if (pid <= 0) {
        snprintf(last_worker_error, sizeof(last_worker_error), "cannot fork a worker: %.*s",
                 (int)elen, error ? (const char *)error : "");
        log_msg(LOG_ERROR, "%s", last_worker_error);
        crash_streak++;
        worker_kill(w, "worker could not be forked");
        output_close(&w->out);
        output_close(&w->err);
        return;
    }
    w->pid = pid;
    if (w->state == W_DYING && !w->exited)
        (void)kill(pid, SIGKILL); /* killed while being spawned */
    for (unsigned i = 0; i < UNCLAIMED_MAX; i++) {
        if (unclaimed[i].pid == pid) {
            unclaimed[i].pid = 0;
            worker_exited(w, unclaimed[i].status); /* it died before we knew its pid */
            return;
        }
    }
    if (w->state == W_SPAWNING)
        w->state = w->ready_early ? W_IDLE : W_STARTING;
    if (orphans_pending)
        kill_orphans();
    if (w->state == W_IDLE) {
        /* Its READY came first (handle_frame): it is ready now, as there. */
        log_msg(LOG_DEBUG, "worker %d ready", (int)w->pid);
        call_ready_hook();
        dispatch();
    }
}

static void on_zygote_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)s;
    if (n > 0) {
        proto_decoder_feed(&zygote.dec, b->base, (size_t)n);
        proto_frame_t f;
        int rc;
        while ((rc = proto_decoder_next(&zygote.dec, &f)) == 1) {
            if (f.type == PROTO_MSG_ZYGOTE_READY) {
                zygote.ready = true;
                zygote.failures = 0;
                zygote.last_error[0] = '\0';
                log_msg(LOG_INFO, "zygote %d ready", (int)zygote.pid);
            } else if (f.type == PROTO_MSG_SPAWNED) {
                on_spawned(&f);
            } else {
                log_msg(LOG_ALERT, "zygote sent an unexpected frame (type %u)", f.type);
            }
            proto_decoder_pop(&zygote.dec, &f);
        }
        pool_maintain();
        return;
    }
    if (n < 0) {
        uv_read_stop(s);
        zygote.ready = false; /* its exit status comes with SIGCHLD */
    }
}

static void on_zygote_chan_closed(uv_handle_t *h)
{
    (void)h;
    zygote.chan_open = false;
    proto_decoder_free(&zygote.dec);
    pool_maintain();
}

static void zygote_exited(int status)
{
    char what[128];
    describe_exit(status, what, sizeof(what));
    zygote.pid = 0;
    zygote.ready = false;
    if (zygote.chan_open && !uv_is_closing((uv_handle_t *)&zygote.chan))
        uv_close((uv_handle_t *)&zygote.chan, on_zygote_chan_closed);
    if (stopping) {
        pool_maintain(); /* it may have been the last child */
        return;
    }
    zygote.failures++;
    snprintf(zygote.last_error, sizeof(zygote.last_error), "the zygote %s",
             what + strlen("worker "));
    log_msg(LOG_ERROR, "%s; starting a new one", zygote.last_error);
    unsigned delay = backoff_ms(zygote.failures);
    if (live_workers() == 0 && zygote.failures >= 2) {
        /* It dies before it is ready, again: nothing can run until that changes, so
         * waiting executions get its error now rather than at their deadline. */
        job_t *job;
        while ((job = queue_pop(&queue)) != NULL)
            finish_job_error(job, 500, zygote.last_error, "crash", 0);
        call_ready_hook();
    }
    uv_timer_start(&zygote.restart_timer, (uv_timer_cb)start_zygote, delay, 0);
}

static void start_zygote(void)
{
    if (stopping || zygote.pid > 0 || zygote.chan_open)
        return;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(zygote.last_error, sizeof(zygote.last_error), "socketpair for the zygote: %s",
                 strerror(errno));
        log_msg(LOG_ERROR, "%s", zygote.last_error);
        uv_timer_start(&zygote.restart_timer, (uv_timer_cb)start_zygote, BACKOFF_CAP_MS, 0);
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(zygote.last_error, sizeof(zygote.last_error), "fork() for the zygote: %s",
                 strerror(errno));
        log_msg(LOG_ERROR, "%s", zygote.last_error);
        (void)close(sv[0]);
        (void)close(sv[1]);
        uv_timer_start(&zygote.restart_timer, (uv_timer_cb)start_zygote, BACKOFF_CAP_MS, 0);
        return;
    }
    if (pid == 0) {
        /* Child: only async-signal-safe calls until exec. The zygote gets a clean signal
         * state and its control socket as fd 3; every other fd is close-on-exec. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        if (sv[1] == 3)
            (void)fcntl(3, F_SETFD, 0);
        else if (dup2(sv[1], 3) < 0)
            _exit(126);
        execve("/proc/self/exe", zygote_argv, zygote_env);
        static const char msg[] = "pyrt: cannot exec /proc/self/exe for the zygote\n";
        (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
        _exit(127);
    }
    (void)close(sv[1]);
    zygote.pid = pid;
    proto_decoder_init(&zygote.dec, 64 * 1024);
    uv_pipe_init(loop, &zygote.chan, 0);
    uv_pipe_open(&zygote.chan, sv[0]);
    zygote.chan_open = true;
    uv_read_start((uv_stream_t *)&zygote.chan, on_alloc, on_zygote_read);
    log_msg(LOG_DEBUG, "zygote %d started", (int)pid);
}

/* ------------------------------------------------------- supervision ---- */

void pool_reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == zygote.pid) {
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
        unclaimed[unclaimed_next].pid = pid;
        unclaimed[unclaimed_next].status = status;
        unclaimed_next = (unclaimed_next + 1) % UNCLAIMED_MAX;
    }
}

static unsigned backoff_waited; /* the crash_streak whose wait is over */

static void on_backoff_done(uv_timer_t *t)
{
    (void)t;
    backoff_active = false;
    backoff_waited = crash_streak;
    pool_maintain();
}

static bool busy(void)
{
    if (queue.length > 0)
        return true;
    for (worker_t *w = workers; w; w = w->next)
        if (w->state == W_BUSY)
            return true;
    return false;
}

static void on_stop_timeout(uv_timer_t *t)
{
    (void)t;
    for (worker_t *w = workers; w; w = w->next)
        if (w->pid > 0 && !w->exited)
            (void)kill(w->pid, SIGKILL);
    if (zygote.pid > 0)
        (void)kill(zygote.pid, SIGKILL);
    for (worker_t *w = workers; w; w = w->next) {
        output_close(&w->out);
        output_close(&w->err);
    }
    pool_maintain();
}

static void stop_all(void)
{
    stopping = true;
    uv_timer_stop(&zygote.restart_timer);
    uv_timer_stop(&backoff_timer);
    /* Closing a worker's channel makes it exit at its next read; the zygote likewise. */
    for (worker_t *w = workers; w; w = w->next) {
        w->expected_exit = true;
        if (w->state != W_DYING)
            w->state = W_DYING;
        close_channel(w);
        if (w->pid <= 0)
            worker_release(w);
    }
    if (zygote.chan_open && !uv_is_closing((uv_handle_t *)&zygote.chan))
        uv_close((uv_handle_t *)&zygote.chan, on_zygote_chan_closed);
    uv_timer_start(&stop_timer, on_stop_timeout, STOP_GRACE_MS, 0);
}

static void pool_maintain(void)
{
    if (shutting_down) {
        if (!stopping && !busy())
            stop_all();
        if (stopping && workers == NULL && zygote.pid == 0 && !zygote.chan_open && shutdown_done) {
            void (*done)(void) = shutdown_done;
            shutdown_done = NULL;
            uv_timer_stop(&stop_timer);
            uv_close((uv_handle_t *)&stop_timer, NULL);
            uv_close((uv_handle_t *)&backoff_timer, NULL);
            uv_close((uv_handle_t *)&zygote.restart_timer, NULL);
            done();
        }
        return;
    }
    if (zygote.pid <= 0 && !zygote.chan_open && !uv_is_active((uv_handle_t *)&zygote.restart_timer))
        start_zygote();
    if (!zygote.ready || backoff_active)
        return;
    unsigned live = live_workers();
    if (live >= (unsigned)config->workers)
        return;
    unsigned delay = crash_streak > backoff_waited ? backoff_ms(crash_streak) : 0;
    if (delay > 0) {
        /* Workers keep dying before they answer anything: wait before the next one,
         * and say so, so that a broken function cannot make pyrt spin. */
        log_msg(LOG_WARN, "workers keep failing (%u in a row, last: %s); next start in %u ms",
                crash_streak, last_worker_error, delay);
        backoff_active = true;
        uv_timer_start(&backoff_timer, on_backoff_done, delay, 0);
        /* Waiting executions of a function that keeps killing its workers get its
         * error now rather than at their deadline; the others wait for a worker. */
        job_t *next;
        for (job_t *job = queue.head; job; job = next) {
            next = job->next;
            const char *storm = storm_answer(job);
            if (storm) {
                queue_remove(&queue, job);
                finish_job_error(job, 500, storm, "crash", 0);
            }
        }
        return;
    }
    /* A failed spawn marks the zygote not ready: stop there, it is being replaced. */
    while (zygote.ready && live_workers() < (unsigned)config->workers)
        worker_spawn();
}

void pool_on_ready(void (*hook)(void))
{
    ready_hook = hook;
}

void pool_set_output(pool_output_fn sink)
{
    output_sink = sink;
}

void pool_shutdown(void (*done)(void))
{
    shutting_down = true;
    shutdown_done = done;
    pool_maintain();
}

static char *xasprintf(const char *fmt, const char *value)
{
    buf_t b = BUF_INIT;
    buf_appendf(&b, fmt, value);
    return buf_steal(&b);
}

int pool_start(uv_loop_t *l, const serve_config_t *cfg, char **envp, char *err, size_t errlen)
{
    loop = l;
    config = cfg;
    zygote_env = envp;
    queue_init(&queue);
    uv_timer_init(loop, &zygote.restart_timer);
    uv_timer_init(loop, &backoff_timer);
    uv_timer_init(loop, &stop_timer);

    char num[32];
    int n = 0;
    zygote_argv = xcalloc(16, sizeof(char *));
    zygote_argv[n++] = xstrdup("pyrt");
    zygote_argv[n++] = xstrdup("__zygote");
    zygote_argv[n++] = xasprintf("--code-dir=%s", cfg->code_dir);
    if (cfg->entrypoint)
        zygote_argv[n++] = xasprintf("--entrypoint=%s", cfg->entrypoint);
    snprintf(num, sizeof(num), "%d", (int)getpid());
    zygote_argv[n++] = xasprintf("--master-pid=%s", num);
    snprintf(num, sizeof(num), "%ld", cfg->max_memory_mib);
    zygote_argv[n++] = xasprintf("--max-memory=%s", num);
    snprintf(num, sizeof(num), "%zu", cfg->max_body);
    zygote_argv[n++] = xasprintf("--max-body=%s", num);
    zygote_argv[n++] = xasprintf("--log-level=%s", log_level_name(log_min_level));
    zygote_argv[n++] = xasprintf("--contract=%s", contract_name(cfg->contract));
    if (cfg->user)
        zygote_argv[n++] = xasprintf("--user=%s", cfg->user);
    if (cfg->preload)
        zygote_argv[n++] = xstrdup("--preload");
    zygote_argv[n] = NULL;

    start_zygote();
    if (zygote.pid <= 0) {
        snprintf(err, errlen, "%s", zygote.last_error);
        return -1;
    }
    return 0;
}
