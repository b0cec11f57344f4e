/* cmd_call.c -- `pyrt call URL [--key K] [request flags]`: one execution request to a
 * running server, as an executor sends it; the answer is shown as `pyrt run` shows
 * its own. A small blocking client: http-parser splits the URL and frames the answer
 * (HTTP/1.1 with Connection: close; Content-Length, chunked or read-to-close). */
#include <errno.h>
#include <http_parser.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/exec_request.h"
#include "cli/opts.h"
#include "common/buf.h"
#include "common/num.h"
#include "common/xalloc.h"

typedef struct response {
    int status;
    bool complete;
    buf_t body;
    buf_t field; /* the header being read */
    bool in_value;
    bool want_value; /* the field is x-request-id */
    buf_t request_id;
} response_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for `events` on fd until `deadline`. 0, or -1 with err. */
static int wait_fd(int fd, short events, double deadline, const char *what, char *err,
                   size_t errlen)
{
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0) {
            snprintf(err, errlen, "%s: timed out", what);
            return -1;
        }
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR) {
            snprintf(err, errlen, "%s: poll: %s", what, strerror(errno));
            return -1;
        }
    }
}

static int connect_to(const char *host, const char *port, double deadline, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline, "connect", err, errlen) == 0) {
            int soerr = 0;
            socklen_t len = sizeof(soerr);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)
                break;
            errno = soerr;
        }
        snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0 && err[0] == '\0')
        snprintf(err, errlen, "cannot connect to %s:%s", host, port);
    return fd;
}

static int send_all(int fd, const char *data, size_t len, double deadline, char *err, size_t errlen)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline, "sending the request", err, errlen) < 0)
                return -1;
        } else {
            snprintf(err, errlen, "sending the request: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    response_t *r = p->data;
    if (r->in_value) {
        buf_clear(&r->field);
        r->in_value = false;
    }
    buf_append(&r->field, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    response_t *r = p->data;
    if (!r->in_value) {
        r->in_value = true;
        r->want_value = r->field.len == 12 && strncasecmp(r->field.data, "x-request-id", 12) == 0;
    }
    if (r->want_value)
        buf_append(&r->request_id, at, len);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    buf_append(&((response_t *)p->data)->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    response_t *r = p->data;
    r->status = (int)p->status_code;
    r->complete = true;
    return 0;
}

static int read_response(int fd, response_t *r, double deadline, char *err, size_t errlen)
{
    http_parser_settings settings = {0};
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    http_parser parser;
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = r;
    char chunk[64 * 1024];
    while (!r->complete) {
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLIN, deadline, "waiting for the answer", err, errlen) < 0)
                return -1;
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "reading the answer: %s", strerror(errno));
            return -1;
        }
        size_t used = http_parser_execute(&parser, &settings, chunk, (size_t)n);
        if (parser.http_errno != HPE_OK || used != (size_t)n) {
            snprintf(err, errlen, "the server's answer is not valid HTTP: %s",
                     http_errno_description(HTTP_PARSER_ERRNO(&parser)));
            return -1;
        }
        if (n == 0 && !r->complete) {
            snprintf(err, errlen, "the server closed the connection before answering in full");
            return -1;
        }
    }
    return 0;
}

static void usage(const opt_spec_t *specs)
{
    printf("usage: pyrt call URL [--key K] [options]\n\n"
           "Sends one execution request to a running pyrt (or any server of the same HTTP\n"
           "contract) and prints the answer's body to stdout, the status and any error\n"
           "message to stderr. Exit status 0 for 2xx.\n\n"
           "  pyrt call http://127.0.0.1:3000/ --key secret --payload '{\"a\": 1}'\n\n"
           "options:\n");
    opts_print_help(specs);
}

int cmd_call(int argc, char **argv)
{
    exec_request_t req = {0};
    const char *key = NULL;
    double wait = 0;
    const opt_spec_t specs[] = {
        {"key", 'k', OPT_STRING, &key, "INTERNAL_RUNTIME_KEY", 0, 0, "KEY",
         "the server's key, sent as x-internal-challenge (default $INTERNAL_RUNTIME_KEY)"},
        EXEC_REQUEST_OPTS(&req),
        {"path", 0, OPT_STRING, &req.path, NULL, 0, 0, "DIR",
         "the folder holding the code, on the server (default: its code folder)"},
        {"wait", 0, OPT_DOUBLE, &wait, NULL, 0.001, 1e6, "S",
         "give up on the answer after S seconds (default: the timeout + 10, else 910)"},
        {0},
    };
    char err[PYRT_ERR_LEN] = "";
    const char *positional[1];
    int npos = 0;
    bool help = false;
    if (opts_parse(specs, argc, argv, positional, 1, &npos, &help, err) < 0) {
        fprintf(stderr, "pyrt call: %s\n", err);
        return 2;
    }
    if (help) {
        usage(specs);
        return 0;
    }
    if (npos == 0) {
        fprintf(stderr, "pyrt call: a URL is required, e.g. http://127.0.0.1:3000/\n");
        return 2;
    }
    const char *url = positional[0];
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, strlen(url), 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)) ||
        !(u.field_set & (1 << UF_SCHEMA)) ||
        strncmp(url + u.field_data[UF_SCHEMA].off, "http", u.field_data[UF_SCHEMA].len) != 0 ||
        u.field_data[UF_SCHEMA].len != 4) {
        fprintf(stderr, "pyrt call: %s: expected an http:// URL, e.g. http://127.0.0.1:3000/\n",
                url);
        return 2;
    }
    if (key == NULL || key[0] == '\0') {
        fprintf(stderr, "pyrt call: no key: give --key or set INTERNAL_RUNTIME_KEY\n");
        return 2;
    }
    if (strpbrk(key, "\r\n")) {
        fprintf(stderr, "pyrt call: --key: must not hold CR or LF\n");
        return 2;
    }
    buf_t body = BUF_INIT;
    if (exec_request_body(&req, "env", (size_t)1 << 30, &body, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyrt call: %s\n", err);
        buf_free(&body);
        return 2;
    }
    if (wait <= 0) {
        double t = 0;
        wait = req.timeout && num_parse_double(req.timeout, &t) == 0 ? t + 10 : 910;
    }

    char *host = xstrndup(url + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len);
    char port[16];
    snprintf(port, sizeof(port), "%u", (u.field_set & (1 << UF_PORT)) ? u.port : 80u);
    const char *path = (u.field_set & (1 << UF_PATH)) ? url + u.field_data[UF_PATH].off : "/";
    size_t path_len = (u.field_set & (1 << UF_PATH)) ? strcspn(path, "#") : 1;

    double deadline = now_s() + wait;
    response_t r = {0};
    int rc = -1;
    int fd = connect_to(host, port, deadline, err, sizeof(err));
    if (fd >= 0) {
        buf_t head = BUF_INIT;
        buf_appendf(&head,
                    "POST %.*s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nx-internal-challenge: %s\r\n"
                    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                    "Connection: close\r\n\r\n",
                    (int)path_len, path, strchr(host, ':') ? "[" : "", host,
                    strchr(host, ':') ? "]" : "", (u.field_set & (1 << UF_PORT)) ? ":" : "",
                    (u.field_set & (1 << UF_PORT)) ? port : "", key, body.len);
        buf_append(&head, body.data, body.len);
        rc = send_all(fd, head.data, head.len, deadline, err, sizeof(err));
        buf_free(&head);
        if (rc == 0)
            rc = read_response(fd, &r, deadline, err, sizeof(err));
        close(fd);
    }
    free(host);
    buf_free(&body);
    int exit_status = 1;
    if (rc < 0) {
        fprintf(stderr, "pyrt call: %s\n", err);
    } else {
        char status_line[200];
        snprintf(status_line, sizeof(status_line), "pyrt call: status %d, req=%.*s", r.status,
                 (int)(r.request_id.len > 128 ? 128 : r.request_id.len),
                 r.request_id.data ? r.request_id.data : "-");
        exit_status =
            exec_request_show(r.status, r.body.data ? r.body.data : "", r.body.len, status_line);
    }
    buf_free(&r.body);
    buf_free(&r.field);
    buf_free(&r.request_id);
    return exit_status;
}
