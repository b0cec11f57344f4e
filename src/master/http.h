/* http.h -- the master's client connections: HTTP/1.x on http-parser, over libuv.
 *
 * One connection, one request at a time: a request's head is checked (framing, key,
 * length, Expect) before its body is read; the body is checked as it arrives; the
 * complete execution goes to the pool as a job, and the parser stays paused (later
 * pipelined bytes wait in the buffer) until the answer is written, so answers leave in
 * order. Reading continues while a job runs, so a client that resets is seen at once
 * (its access line says client_gone); an EOF then is a half-close: the answer is still
 * written, and the connection closes after it.
 * An answer does not parse what is behind it: that waits for the next loop turn, so a
 * request reaches the pool from the loop only, never from inside the pool's answer.
 *
 * Deadlines per connection: --read-timeout from a request's first byte to its last
 * (reads do not extend it), --idle-timeout between requests, a short linger after an
 * answer that closes the connection. */
#ifndef PYRT_HTTP_H
#define PYRT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#include "master/config.h"
#include "master/job.h"

void http_init(uv_loop_t *loop, const serve_config_t *cfg);

/* The listener's calls (listener.h): whether another connection may be taken now
 * (below --max-connections, not draining), and a new connection on an accepted socket
 * (taken). */
bool http_has_room(void);
void http_accepted(int fd);

/* SIGTERM with --drain-delay: /__ready answers 503 and answers close their connection
 * (clients reconnect, a load balancer elsewhere), while connections are still accepted
 * and served. */
void http_stopping_soon(void);

/* Shutdown: answers from now on close their connection; idle and half-read
 * connections are closed now. */
void http_drain(void);

/* After the pool has stopped (no answer can come): the module's own handle closes. */
void http_close(void);

#endif
