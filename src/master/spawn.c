/* spawn.c -- the zygote (started, restarted with back-off, read) and SPAWN: a new
 * worker's channel, output pipes and gate page, sent to the zygote to fork with. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "master/pool_internal.h"
#include "master/uidslot.h"
#include "proto/zygote.h"

/* ------------------------------------------------------------- workers ---- */

static int send_spawn(unsigned id, uid_t uid, int fds[SPAWN_FDS])
{
    buf_t frame = BUF_INIT;
    size_t start = proto_frame_begin(&frame, PROTO_MSG_SPAWN);
    proto_put_u32(&frame, id);
    proto_put_u32(&frame, (uint32_t)uid);
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
    int rc = uv_fileno((uv_handle_t *)&pool.zygote.chan, &zfd);
    if (rc == 0) {
        ssize_t n;
        do
            n = sendmsg(zfd, &msg, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        rc = n == (ssize_t)frame.len ? 0 : -1;
    }
    int saved = errno;
    buf_free(&frame);
    errno = saved;
    return rc;
}

/* ------------------------------------------------------- spawn watch ---- */

bool spawn_can_send(void)
{
    return !pool.zygote.send_blocked && pool.zygote.spawns_pending < SPAWN_INFLIGHT_MAX;
}

/* A zygote that answers no SPAWN for SPAWN_TIMEOUT_MS -- stopped, or stuck -- is
 * killed: its exit (zygote_exited) starts a new one, and the workers it did not fork
 * see their channel close (its end was in the dead zygote's socket) and are replaced. */
static void on_spawn_timer(uv_timer_t *t)
{
    zygote_t *z = &pool.zygote;
    (void)t;
    if (z->spawns_pending == 0 || z->pid <= 0)
        return;
    uint64_t quiet = uv_now(pool.loop) - z->progress_ms;
    if (quiet < SPAWN_TIMEOUT_MS) {
        (void)uv_timer_start(&z->spawn_timer, on_spawn_timer, SPAWN_TIMEOUT_MS - quiet, 0);
        return;
    }
    log_msg(LOG_ERROR, "the zygote %d answered none of %u SPAWN requests in %u ms; replacing it",
            (int)z->pid, z->spawns_pending, (unsigned)quiet);
    (void)kill(z->pid, SIGKILL);
}

static void spawn_sent(void)
{
    zygote_t *z = &pool.zygote;
    if (z->spawns_pending++ == 0) {
        z->progress_ms = uv_now(pool.loop);
        (void)uv_timer_start(&z->spawn_timer, on_spawn_timer, SPAWN_TIMEOUT_MS, 0);
    }
}

static void spawn_answered(void)
{
    zygote_t *z = &pool.zygote;
    if (z->spawns_pending > 0)
        z->spawns_pending--;
    z->send_blocked = false;
    z->progress_ms = uv_now(pool.loop);
    if (z->spawns_pending == 0)
        (void)uv_timer_stop(&z->spawn_timer);
}

static void spawn_watch_reset(void)
{
    pool.zygote.spawns_pending = 0;
    pool.zygote.send_blocked = false;
    (void)uv_timer_stop(&pool.zygote.spawn_timer);
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

static void close_pair(int fds[2])
{
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            (void)close(fds[i]);
}

/* A worker could not be made here: like one that could not be forked, it counts
 * toward the back-off, so that a lack of fds cannot make pyrt spin. */
static int spawn_failed(const char *what, const char *why)
{
    snprintf(pool.last_worker_error, sizeof(pool.last_worker_error), "%s: %s", what, why);
    log_msg(LOG_ERROR, "%s", pool.last_worker_error);
    backoff_death(&pool.backoff, NULL, NULL);
    return -1;
}

int spawn_worker(void)
{
    uid_t uid = uidslot_take();
    if (uidslot_enabled() && uid == 0)
        return spawn_failed("cannot start a worker", "every worker uid is in use");
    int chan[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    gate_t *gate = NULL;
    int gate_fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) != 0 ||
        pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
        (gate_fd = gate_create(&gate)) < 0) {
        int saved = errno;
        close_pair(chan);
        close_pair(out);
        close_pair(err);
        uidslot_release(uid);
        return spawn_failed("cannot create a worker's channel, pipes or gate", strerror(saved));
    }
    int rc;
    worker_t *w = worker_new(++pool.next_worker_id, chan[0], out[0], err[0], gate, &rc);
    w->uid = uid; /* released by worker_free() */
    if (rc == 0)
        rc = channel_start(w);
    if (rc == 0)
        rc = output_start(&w->out);
    if (rc == 0)
        rc = output_start(&w->err);
    int child_fds[SPAWN_FDS] = {[SPAWN_FD_CHANNEL] = chan[1],
                                [SPAWN_FD_STDOUT] = out[1],
                                [SPAWN_FD_STDERR] = err[1],
                                [SPAWN_FD_GATE] = gate_fd};
    int sent = rc == 0 ? send_spawn(w->id, w->uid, child_fds) : -1;
    int saved = errno;
    for (int i = 0; i < SPAWN_FDS; i++)
        (void)close(child_fds[i]);
    if (sent == 0) {
        spawn_sent();
        return 0;
    }
    if (rc == 0 && (saved == EAGAIN || saved == EWOULDBLOCK) && pool.zygote.spawns_pending > 0) {
        /* Its socket is full of SPAWNs it has yet to read: this one waits for the next
         * answer (spawn_can_send); the worker made for it goes, unforked, uncounted. */
        log_msg(LOG_DEBUG, "the zygote's socket is full (%u SPAWNs pending): waiting",
                pool.zygote.spawns_pending);
        pool.zygote.send_blocked = true;
        worker_kill(w, NULL);
        output_close(&w->out);
        output_close(&w->err);
        return 0;
    }
    if (rc != 0) {
        spawn_failed("cannot read a new worker's channel or pipes", uv_strerror(rc));
        worker_kill(w, "the worker's channel or pipes could not be read");
    } else {
        /* The zygote is gone (its exit is on its way as SIGCHLD): no more spawns until
         * a new one says it is ready, or this would retry in a loop. */
        log_msg(LOG_ERROR, "cannot send a spawn request to the zygote: %s", strerror(saved));
        pool.zygote.ready = false;
        worker_kill(w, "the zygote is unreachable");
    }
    output_close(&w->out);
    output_close(&w->err);
    return -1;
}

/* The zygote's answer to a SPAWN: the worker's pid, or why it could not fork. */
static void on_spawned(const proto_frame_t *f)
{
    proto_reader_t r;
    proto_reader_init(&r, f->payload, f->length);
    unsigned id = proto_get_u32(&r);
    pid_t pid = (pid_t)proto_get_u32(&r);
    uint32_t elen;
    const uint8_t *error = proto_get_bytes(&r, &elen);
    uint32_t flags = proto_get_u32(&r);
    worker_t *w = NULL;
    spawn_answered();
    for (worker_t *x = pool.workers; x; x = x->next)
        if (x->id == id)
            w = x;
    if (r.error || w == NULL) {
        log_msg(LOG_ALERT, "zygote sent SPAWNED for unknown worker %u", id);
        return;
    }
    if (pid <= 0) {
        snprintf(pool.last_worker_error, sizeof(pool.last_worker_error),
                 "cannot fork a worker: %.*s", (int)elen, error ? (const char *)error : "");
        log_msg(LOG_ERROR, "%s", pool.last_worker_error);
        backoff_death(&pool.backoff, NULL, NULL);
        worker_kill(w, "worker could not be forked");
        output_close(&w->out);
        output_close(&w->err);
        return;
    }
    w->pid = pid;
    w->own_ns = (flags & ZYGOTE_FLAG_NAMESPACES) != 0;
    if (w->state == W_DYING && !w->exited)
        (void)kill(pid, SIGKILL); /* killed while being spawned */
    for (unsigned i = 0; i < UNCLAIMED_MAX; i++) {
        if (pool.unclaimed[i].pid == pid) {
            pool.unclaimed[i].pid = 0;
            worker_exited(w, pool.unclaimed[i].status); /* it died before we knew its pid */
            return;
        }
    }
    if (w->state == W_SPAWNING)
        w->state = w->ready_early ? W_IDLE : W_STARTING;
    if (pool.orphans_pending)
        kill_orphans();
    if (w->state == W_IDLE) {
        /* Its READY came first (handle_frame): it is ready now, as there. */
        log_msg(LOG_DEBUG, "worker %d ready", (int)w->pid);
        call_ready_hook();
        dispatch();
    }
}

/* -------------------------------------------------------------- zygote ---- */

/* ZYGOTE_READY: whether its workers get namespaces of their own, logged when it is news
 * (the first zygote, or one that differs from the last). */
static void on_zygote_ready(const proto_frame_t *f)
{
    zygote_t *z = &pool.zygote;
    proto_reader_t r;
    proto_reader_init(&r, f->payload, f->length);
    uint32_t flags = proto_get_u32(&r);
    uint32_t wlen;
    const uint8_t *why = proto_get_bytes(&r, &wlen);
    if (r.error) {
        log_msg(LOG_ALERT, "zygote sent a malformed ZYGOTE_READY (%u bytes)", f->length);
        return;
    }
    int on = (flags & ZYGOTE_FLAG_NAMESPACES) != 0;
    if (wlen > 0 && on != z->namespaces_said)
        log_msg(LOG_WARN,
                "workers: no namespaces of their own (%.*s): they can signal the master, the "
                "zygote and each other (docs/operating.md, \"The sandbox\")",
                (int)wlen, (const char *)why);
    else if (on && on != z->namespaces_said)
        log_msg(LOG_INFO, "workers: own user+PID namespace each");
    if (on || wlen > 0)
        z->namespaces_said = on;
    z->ready = true;
    z->failures = 0;
    z->last_error[0] = '\0';
    log_msg(LOG_INFO, "zygote %d ready", (int)z->pid);
}

static void on_zygote_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    zygote_t *z = &pool.zygote;
    if (n > 0) {
        proto_decoder_feed(&z->dec, b->base, (size_t)n);
        proto_frame_t f;
        while (proto_decoder_next(&z->dec, &f) == 1) {
            if (f.type == PROTO_MSG_ZYGOTE_READY) {
                on_zygote_ready(&f);
            } else if (f.type == PROTO_MSG_SPAWNED) {
                on_spawned(&f);
            } else {
                log_msg(LOG_ALERT, "zygote sent an unexpected frame (type %u)", f.type);
            }
            proto_decoder_pop(&z->dec, &f);
        }
        pool_maintain();
        return;
    }
    if (n < 0) {
        (void)uv_read_stop(s); /* always 0 */
        z->ready = false;      /* its exit status comes with SIGCHLD */
    }
}

static void on_zygote_chan_closed(uv_handle_t *h)
{
    (void)h;
    pool.zygote.chan_open = false;
    proto_decoder_free(&pool.zygote.dec);
    pool_maintain();
}

void zygote_close_channel(void)
{
    if (pool.zygote.chan_open && !uv_is_closing((uv_handle_t *)&pool.zygote.chan))
        uv_close((uv_handle_t *)&pool.zygote.chan, on_zygote_chan_closed);
}

static void on_restart_timer(uv_timer_t *t)
{
    (void)t;
    zygote_start();
}

static void retry_later(uv_timer_t *timer, unsigned ms)
{
    (void)uv_timer_start(timer, on_restart_timer, ms, 0); /* 0: the timer is not closing */
}

void zygote_exited(int status)
{
    zygote_t *z = &pool.zygote;
    char what[128];
    describe_exit("the zygote", false, status, what, sizeof(what));
    z->pid = 0;
    z->ready = false;
    spawn_watch_reset();
    zygote_close_channel();
    if (pool.stopping) {
        pool_maintain(); /* it may have been the last child */
        return;
    }
    z->failures++;
    snprintf(z->last_error, sizeof(z->last_error), "%s", what);
    log_msg(LOG_ERROR, "%s; starting a new one", z->last_error);
    unsigned delay = backoff_ms(z->failures);
    if (live_workers() == 0 && z->failures >= 2) {
        /* It dies before it is ready, again: nothing can run until that changes, so
         * waiting executions get its error now rather than at their deadline. */
        job_t *job;
        while ((job = queue_pop(&pool.queue)) != NULL)
            finish_job_error(job, 500, z->last_error, "crash", 0);
        call_ready_hook();
    }
    retry_later(&z->restart_timer, delay);
}

/* The zygote's start failed before it ran: the error for answers and health, and a
 * retry. */
static void start_failed(const char *what)
{
    snprintf(pool.zygote.last_error, sizeof(pool.zygote.last_error), "%s: %s", what,
             strerror(errno));
    log_msg(LOG_ERROR, "%s", pool.zygote.last_error);
    retry_later(&pool.zygote.restart_timer, BACKOFF_CAP_MS);
}

/* In the child: only async-signal-safe calls until exec. The zygote gets a clean
 * signal state, its control socket as ZYGOTE_CONTROL_FD (every other fd is
 * close-on-exec), and a process group of its own, which its workers share: a signal to
 * the master's group (Ctrl-C on a terminal, `timeout`, a supervisor's kill of the group)
 * reaches the master alone, which then finishes what runs and stops them itself. They
 * die with the master all the same (PDEATHSIG). */
static void exec_zygote(int control) __attribute__((noreturn));
static void exec_zygote(int control)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    (void)setpgid(0, 0); /* fails only if already a group leader: it is not */
    if (control == ZYGOTE_CONTROL_FD)
        (void)fcntl(ZYGOTE_CONTROL_FD, F_SETFD, 0);
    else if (dup2(control, ZYGOTE_CONTROL_FD) < 0)
        _exit(ZYGOTE_EXEC_EXIT_FD);
    execve("/proc/self/exe", pool.zygote.argv, pool.zygote.env);
    static const char msg[] = "pyrt: cannot exec /proc/self/exe for the zygote\n";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(ZYGOTE_EXEC_EXIT_EXEC);
}

void zygote_start(void)
{
    zygote_t *z = &pool.zygote;
    if (pool.stopping || z->pid > 0 || z->chan_open)
        return;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        start_failed("socketpair for the zygote");
        return;
    }
    pid_t pid = fork();
    if (pid == 0)
        exec_zygote(sv[1]);
    int saved = errno;
    (void)close(sv[1]);
    if (pid < 0) {
        (void)close(sv[0]);
        errno = saved;
        start_failed("fork() for the zygote");
        return;
    }
    z->pid = pid;
    proto_decoder_init(&z->dec, ZYGOTE_FRAME_MAX);
    (void)uv_pipe_init(pool.loop, &z->chan, 0); /* 0 on Unix: it only fills the handle */
    z->chan_open = true;                        /* closed by zygote_close_channel() */
    int rc = uv_pipe_open(&z->chan, sv[0]);
    if (rc != 0)
        (void)close(sv[0]); /* not the handle's: libuv took it only on success */
    else
        rc = uv_read_start((uv_stream_t *)&z->chan, pool_alloc, on_zygote_read);
    if (rc != 0) {
        /* It could not be heard: it goes, and its exit restarts it (zygote_exited). */
        log_msg(LOG_ERROR, "cannot read the zygote's control socket: %s", uv_strerror(rc));
        (void)kill(pid, SIGKILL);
    }
    log_msg(LOG_DEBUG, "zygote %d started", (int)pid);
}
