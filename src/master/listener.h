/* listener.h -- the listening socket: accepting connections while there is room for
 * them (--max-connections), and backing off when the process is out of file
 * descriptors (EMFILE, ENFILE) instead of retrying in a tight loop.
 *
 * The socket is pyrt's own (accept4 under a uv_poll_t), not a libuv stream: libuv's
 * listener retries a failing accept() without returning to the loop, so one lowered
 * RLIMIT_NOFILE would stop every client, deadline and worker. Here a failed accept
 * stops polling for a while (LISTENER_BACKOFF_MIN_MS, doubling to _MAX_MS); pending
 * connections wait in the kernel's backlog; the error is logged at most once per
 * LISTENER_LOG_INTERVAL_MS, with how many failures it stands for. */
#ifndef PYRT_LISTENER_H
#define PYRT_LISTENER_H

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#define LISTENER_BACKOFF_MIN_MS 50
#define LISTENER_BACKOFF_MAX_MS 1000
#define LISTENER_LOG_INTERVAL_MS 5000
#define LISTENER_BATCH 256 /* connections accepted per wake-up, so that others get a turn */

typedef struct listener_calls {
    bool (*has_room)(void);   /* false: leave connections in the backlog until resume */
    void (*accepted)(int fd); /* takes the connected socket (non-blocking, CLOEXEC) */
} listener_calls_t;

/* Binds `addr`, listens with `backlog` and starts accepting. 0, or -1 with err naming
 * the address ("cannot listen on HOST:PORT: ..."). `calls` must outlive the listener. */
int listener_open(uv_loop_t *loop, const struct sockaddr *addr, const char *host, long port,
                  int backlog, const listener_calls_t *calls, char *err, size_t errlen);

/* There may be room again (a connection closed): accept if accepting was paused for
 * lack of it. Harmless when closed. */
void listener_resume(void);

/* Stops accepting for good and closes the socket (shutdown). */
void listener_close(void);

#endif
