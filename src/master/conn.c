/* conn.c -- one client connection's life: made from an accepted socket (conn_new), its timers, the
 * close after an answer that said Connection: close (linger), conn_close, and the free
 * once libuv has closed both of its handles (conn_free). What a connection reads and
 * how a request is decided is http.c's; what it writes is http_answer.c's. */
#include "master/http.h"
#include "master/http_internal.h"

#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "master/listener.h"
#include "master/pool.h"

/* ---------------------------------------------------------------- timers ---- */

static void on_timer(uv_timer_t *timer)
{
    conn_t *c = timer->data;
    switch (c->state) {
    case CONN_READING:
        conn_respond_error(c, 408, "request not received in time (read timeout)", true, "rejected");
        break;
    case CONN_IDLE:
    case CONN_LINGER: conn_close(c); break;
    case CONN_AT_POOL: break; /* the job's own deadline applies */
    }
}

void conn_arm(conn_t *c, double seconds)
{
    uint64_t ms = (uint64_t)(seconds * 1000.0 + 0.5);
    (void)uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0); /* 0: the timer is not closing */
}

/* ------------------------------------------------------------ new, free ---- */

/* Frees what the connection owns (its request, its unparsed input) and the struct. Only
 * from on_handle_closed: libuv may touch both handles until their close callbacks. */
static void conn_free(conn_t *c)
{
    if (c == NULL)
        return;
    request_reset(&c->req);
    buf_free(&c->in);
    free(c);
}

static void on_handle_closed(uv_handle_t *handle)
{
    conn_t *c = handle->data;
    if (--c->open_handles > 0)
        return;
    conn_free(c);
}

conn_t *conn_new(int fd)
{
    conn_t *c = xcalloc(1, sizeof(*c));
    (void)uv_tcp_init(http.loop, &c->tcp); /* 0: with no address family, no socket is made yet */
    c->tcp.data = c;
    c->open_handles = 1;
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc != 0) {
        log_msg(LOG_WARN, "cannot take an accepted connection: %s", uv_strerror(rc));
        (void)close(fd); /* not the handle's: uv_tcp_open failed */
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed); /* frees c */
        return NULL;
    }
    (void)uv_timer_init(http.loop, &c->timer); /* 0 on Unix: it only fills the handle */
    c->timer.data = c;
    c->open_handles = 2;
    (void)uv_tcp_nodelay(&c->tcp, 1); /* latency only: answers go without it too */
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->at_request_line = true;
    request_init(&c->req);
    buf_init(&c->in);
    c->state = CONN_IDLE;
    c->next = http.connections;
    if (http.connections)
        http.connections->prev = c;
    http.connections = c;
    http.connection_count++;
    return c;
}

/* ---------------------------------------------------------------- close ---- */

void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->job) {
        log_client_gone(c); /* it was never answered: its access line is written now */
        pool_job_detach(c->job);
        c->job = NULL;
    }
    resume_unlink(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        http.connections = c->next;
    if (c->next)
        c->next->prev = c->prev;
    http.connection_count--;
    (void)uv_timer_stop(&c->timer); /* always 0 */
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    listener_resume(); /* at --max-connections, the next one waits in the backlog */
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    free(req);
}

/* After an answer with Connection: close: send FIN, keep reading (and dropping) until
 * the client closes or LINGER_MS pass. Closing at once could make the kernel answer
 * unread input with RST, destroying the answer before the client reads it. */
void start_linger(conn_t *c)
{
    c->state = CONN_LINGER;
    buf_free(&c->in);
    uv_shutdown_t *req = xmalloc(sizeof(*req));
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(c);
        return;
    }
    if (!c->reading)
        conn_read_start(c);
    (void)uv_timer_start(&c->timer, on_timer, LINGER_MS, 0); /* 0: the timer is not closing */
}

/* --------------------------------------------------------------- accept ---- */

bool http_has_room(void)
{
    return !http.draining && http.connection_count < (size_t)http.config->max_connections;
}

void http_accepted(int fd)
{
    conn_t *c = conn_new(fd);
    if (c == NULL)
        return;
    conn_arm(c, http.config->idle_timeout);
    conn_read_start(c);
}
