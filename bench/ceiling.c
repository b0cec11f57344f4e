/* ceiling -- the machine's ceiling for the benchmark: a minimal HTTP/1.1 keep-alive
 * responder in C, no Python. Every request gets the same small JSON answer.
 *
 *     ceiling HOST PORT WORKERS
 *
 * The parent forks WORKERS processes; each binds its own listening socket on HOST:PORT
 * with SO_REUSEPORT (the kernel spreads connections over them) and serves with epoll.
 * It parses just enough to find where a request ends: the blank line after the head and
 * Content-Length bytes of body (skipped without being kept). Keep-alive and pipelining
 * work; "Connection: close" or HTTP/1.0 closes after the answer. SIGTERM or SIGINT to
 * the parent stops everyone; a worker whose parent dies exits too.
 *
 * Built by `make bench`: cc -O2 -Wall -Wextra -Werror bench/ceiling.c -o build/bench/ceiling
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define IN_CAP 65536
#define OUT_CAP 65536
#define MAX_EVENTS 256

static const char ANSWER_BODY[] =
    "{\"normal\":\"Hello World!\",\"env1\":\"Hello World!\",\"payload\":\"Hello World! 2\"}";
static char answer[256];
static size_t answer_len;

typedef struct {
    int fd;
    size_t in_len;           /* bytes of the current head in in[] */
    unsigned long long skip; /* body bytes still to discard */
    int close_after;         /* close once out[] is sent */
    size_t out_len, out_off;
    char in[IN_CAP];
    char out[OUT_CAP];
} conn_t;

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

static void conn_free(int ep, conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Case-insensitive search for needle in the first len bytes of hay. */
static const char *find_ci(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

/* Sends what is queued; 0 when all is out, 1 when the socket is full, -1 on error. */
static int flush_out(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 1;
        } else {
            return -1;
        }
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static int queue_answer(conn_t *c)
{
    if (c->out_len + answer_len > OUT_CAP)
        return -1;
    memcpy(c->out + c->out_len, answer, answer_len);
    c->out_len += answer_len;
    return 0;
}

/* Takes the complete requests at the start of in[]; queues one answer for each (once
 * its body is in: a body still arriving is skipped first, then answered).
 * Returns -1 for a request that cannot be handled (head too large, bad length). */
static int take_requests(conn_t *c)
{
    for (;;) {
        if (c->skip > 0 || c->close_after)
            return 0;
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (end == NULL)
            return c->in_len >= IN_CAP ? -1 : 0;
        size_t head = (size_t)(end - c->in) + 4;
        unsigned long long body = 0;
        const char *cl = find_ci(c->in, head, "\r\ncontent-length:");
        if (cl != NULL) {
            cl += strlen("\r\ncontent-length:");
            while (*cl == ' ' || *cl == '\t')
                cl++;
            if (!isdigit((unsigned char)*cl))
                return -1;
            body = strtoull(cl, NULL, 10);
        }
        const char *eol = memchr(c->in, '\r', head);
        if (find_ci(c->in, head, "\r\nconnection: close") != NULL ||
            (eol != NULL && eol - c->in >= 8 && memcmp(eol - 8, "HTTP/1.0", 8) == 0))
            c->close_after = 1;
        size_t rest = c->in_len - head;
        if ((unsigned long long)rest >= body) {
            if (queue_answer(c) < 0)
                return -1;
            memmove(c->in, c->in + head + body, rest - (size_t)body);
            c->in_len = rest - (size_t)body;
        } else {
            c->skip = body - rest;
            c->in_len = 0;
        }
    }
}

/* Reads what the socket has; 0 to keep the connection, -1 to close it. */
static int on_readable(conn_t *c)
{
    for (;;) {
        char *dst;
        size_t room;
        char scratch[65536];
        if (c->skip > 0) {
            dst = scratch;
            room = c->skip < sizeof(scratch) ? (size_t)c->skip : sizeof(scratch);
        } else {
            dst = c->in + c->in_len;
            room = IN_CAP - c->in_len;
            if (room == 0)
                return -1;
        }
        ssize_t n = recv(c->fd, dst, room, 0);
        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        if (c->skip > 0) {
            c->skip -= (unsigned long long)n;
            if (c->skip > 0)
                continue;
            if (queue_answer(c) < 0)
                return -1;
        } else {
            c->in_len += (size_t)n;
        }
        if (take_requests(c) < 0)
            return -1;
        if (c->out_len > 0) {
            int rc = flush_out(c);
            if (rc < 0)
                return -1;
            if (rc > 0)
                return 0; /* wait for EPOLLOUT before reading more */
            if (c->close_after)
                return -1;
        }
    }
}

static int listen_on(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int serve(const char *host, int port)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int lfd = listen_on(host, port);
    if (lfd < 0) {
        perror("ceiling: listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("ceiling: epoll");
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[MAX_EVENTS];
    while (!stopping) {
        int n = epoll_wait(ep, events, MAX_EVENTS, 500);
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    conn_t *nc = malloc(sizeof(*nc));
                    if (nc == NULL) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    nc->in_len = 0;
                    nc->skip = 0;
                    nc->close_after = 0;
                    nc->out_len = nc->out_off = 0;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) {
                        close(fd);
                        free(nc);
                    }
                }
                continue;
            }
            uint32_t e = events[i].events;
            int drop = 0;
            if (e & EPOLLOUT) {
                int rc = flush_out(c);
                if (rc < 0 || (rc == 0 && c->close_after)) {
                    drop = 1;
                } else if (rc == 0) {
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
                    e |= EPOLLIN; /* read what arrived meanwhile */
                }
            }
            if (!drop && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && c->out_len == 0)
                drop = on_readable(c) < 0;
            if (!drop && c->out_len > 0) {
                struct epoll_event cev = {.events = EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
            }
            if (drop)
                conn_free(ep, c);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ceiling HOST PORT WORKERS\n");
        return 2;
    }
    int port = atoi(argv[2]);
    int workers = atoi(argv[3]);
    if (port <= 0 || port > 65535 || workers <= 0 || workers > 256) {
        fprintf(stderr, "ceiling: bad port or worker count\n");
        return 2;
    }
    answer_len = (size_t)snprintf(answer, sizeof(answer),
                                  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  "Content-Length: %zu\r\n\r\n%s",
                                  sizeof(ANSWER_BODY) - 1, ANSWER_BODY);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Check the address once in the parent, so that a port in use is an error at once. */
    int probe = listen_on(argv[1], port);
    if (probe < 0) {
        perror("ceiling: listen");
        return 1;
    }
    close(probe);

    pid_t *kids = calloc((size_t)workers, sizeof(*kids));
    if (kids == NULL)
        return 1;
    for (int i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("ceiling: fork");
            return 1;
        }
        if (pid == 0)
            return serve(argv[1], port);
        kids[i] = pid;
    }
    while (!stopping) {
        int status;
        pid_t pid = wait(&status);
        if (pid < 0 && errno != EINTR)
            break;
        if (pid > 0 && !stopping) {
            fprintf(stderr, "ceiling: worker %d exited (status %d)\n", (int)pid, status);
            stopping = 1;
        }
    }
    for (int i = 0; i < workers; i++)
        kill(kids[i], SIGTERM);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    free(kids);
    return 0;
}
