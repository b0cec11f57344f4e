/* listener.c -- the listening socket: accept while there is room, back off when out of
 * file descriptors, log that at a bounded rate (see listener.h). */
#include "master/listener.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static struct {
    uv_loop_t *loop;
    const listener_calls_t *calls;
    int fd;             /* the listening socket; -1 when none */
    uv_poll_t poll;     /* readable: connections wait */
    uv_timer_t backoff; /* running while accepting is paused for an fd shortage */
    bool polling;
    bool full;            /* paused at --max-connections: listener_resume() restarts */
    bool open;            /* between listener_open and listener_close */
    unsigned backoff_ms;  /* the next pause; 0 once an accept succeeded */
    uint64_t failures;    /* failed accepts since the last report */
    uint64_t last_log_ms; /* uv_now() of the last report; 0: none yet */
} L = {.fd = -1};

static void on_readable(uv_poll_t *poll, int status, int events);

static void set_polling(bool on)
{
    if (!L.open || on == L.polling)
        return;
    int rc = on ? uv_poll_start(&L.poll, UV_READABLE, on_readable) : uv_poll_stop(&L.poll);
    if (rc != 0) {
        log_msg(LOG_ERROR, "cannot %s polling the listening socket: %s", on ? "start" : "stop",
                uv_strerror(rc));
        return;
    }
    L.polling = on;
}

static void on_backoff_done(uv_timer_t *t)
{
    (void)t;
    set_polling(true); /* an accept that fails again pauses again, for longer */
}

/* Reports the shortage: at once the first time, then at most once per interval, with
 * the count of failures the line stands for. */
static void report_shortage(int err)
{
    L.failures++;
    uint64_t now = uv_now(L.loop);
    if (L.last_log_ms != 0 && now - L.last_log_ms < LISTENER_LOG_INTERVAL_MS)
        return;
    log_msg(LOG_ERROR,
            "accept: %s (%llu time%s since the last report); not accepting for %u ms: new "
            "connections wait in the listen backlog",
            strerror(err), (unsigned long long)L.failures, L.failures == 1 ? "" : "s",
            L.backoff_ms);
    L.failures = 0;
    L.last_log_ms = now;
}

static void back_off(int err)
{
    L.backoff_ms = L.backoff_ms == 0 ? LISTENER_BACKOFF_MIN_MS : L.backoff_ms * 2;
    if (L.backoff_ms > LISTENER_BACKOFF_MAX_MS)
        L.backoff_ms = LISTENER_BACKOFF_MAX_MS;
    report_shortage(err);
    set_polling(false);
    (void)uv_timer_start(&L.backoff, on_backoff_done, L.backoff_ms, 0); /* 0: it has a cb */
}

static void recovered(void)
{
    if (L.backoff_ms == 0)
        return;
    if (L.last_log_ms != 0)
        log_msg(LOG_INFO, "accept: accepting connections again");
    L.backoff_ms = 0;
    L.failures = 0;
    L.last_log_ms = 0;
}

static void on_readable(uv_poll_t *poll, int status, int events)
{
    (void)poll;
    (void)events;
    if (status < 0) {
        log_msg(LOG_WARN, "the listening socket: %s", uv_strerror(status));
        return;
    }
    for (int n = 0; n < LISTENER_BATCH && L.open; n++) {
        if (!L.calls->has_room()) {
            L.full = true; /* the backlog holds them until a connection closes */
            set_polling(false);
            return;
        }
        struct sockaddr_storage peer; /* unused: given so that no argument is NULL */
        socklen_t peer_len = sizeof(peer);
        int fd = accept4(L.fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue; /* that connection is gone; others may wait */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                back_off(errno);
                return;
            }
            log_msg(LOG_WARN, "accept: %s", strerror(errno));
            return;
        }
        recovered();
        L.calls->accepted(fd);
    }
}

void listener_resume(void)
{
    if (!L.open || !L.full || !L.calls->has_room())
        return;
    L.full = false;
    if (!uv_is_active((uv_handle_t *)&L.backoff))
        set_polling(true);
}

int listener_open(uv_loop_t *loop, const struct sockaddr *addr, const char *host, long port,
                  int backlog, const listener_calls_t *calls, char *err, size_t errlen)
{
    socklen_t len =
        addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int one = 1;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, addr, len) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s:%ld: %s", host, port,
                 e == EADDRINUSE ? "Address already in use" : strerror(e));
        if (fd >= 0)
            (void)close(fd);
        return -1;
    }
    int rc = uv_poll_init(loop, &L.poll, fd);
    if (rc != 0) {
        snprintf(err, errlen, "cannot poll the listening socket on %s:%ld: %s", host, port,
                 uv_strerror(rc));
        (void)close(fd);
        return -1;
    }
    (void)uv_timer_init(loop, &L.backoff); /* 0 on Unix: it only fills the handle */
    L.loop = loop;
    L.calls = calls;
    L.fd = fd;
    L.open = true;
    set_polling(true);
    return 0;
}

static void on_poll_closed(uv_handle_t *h)
{
    (void)h;
    (void)close(L.fd); /* after the poll handle is gone: it may not watch a closed fd */
    L.fd = -1;
}

void listener_close(void)
{
    if (!L.open)
        return;
    L.open = false;
    L.polling = false;
    uv_close((uv_handle_t *)&L.backoff, NULL);
    uv_close((uv_handle_t *)&L.poll, on_poll_closed);
}
