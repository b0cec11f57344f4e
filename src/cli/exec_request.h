/* exec_request.h -- what `pyrt run` and `pyrt call` share: the execution request's
 * flags, the JSON body they make, and how an answer is shown.
 *
 * The body is the one an executor sends (CONTRACT.md, section 2): `payload` as given
 * (JSON text, or @FILE to read it from a file), `env` and `headers` from repeated
 * K=V flags, `timeout`, `file` and `path` when given. Answers go out the same way for
 * both commands: the body on stdout, a status line on stderr, and for an error answer
 * ({"message": ..., "code": N}) the message -- a traceback, say -- on stderr as text. */
#ifndef PYRT_EXEC_REQUEST_H
#define PYRT_EXEC_REQUEST_H

#include <stddef.h>

#include "cli/opts.h"
#include "common/buf.h"

typedef struct exec_request {
    const char *payload; /* JSON text, "@FILE", or NULL: none */
    opt_list_t env;      /* K=V */
    opt_list_t headers;  /* K=V */
    const char *timeout; /* seconds as given, or NULL */
    const char *file;    /* or NULL */
    const char *path;    /* or NULL */
} exec_request_t;

/* The option specs for the fields above, for a command's own table. */
#define EXEC_REQUEST_OPTS(r)                                                                       \
    {"payload",                                                                                    \
     0,                                                                                            \
     OPT_STRING,                                                                                   \
     &(r)->payload,                                                                                \
     NULL,                                                                                         \
     0,                                                                                            \
     0,                                                                                            \
     "JSON|@FILE",                                                                                 \
     "req.payload: JSON text, or @FILE to read it from FILE"},                                     \
        {"env", 'e', OPT_MULTI, &(r)->env, NULL, 0, 0, "K=V", "an entry of req.env (repeatable)"}, \
        {"header",                                                                                 \
         'H',                                                                                      \
         OPT_MULTI,                                                                                \
         &(r)->headers,                                                                            \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         "K=V",                                                                                    \
         "an entry of req.headers (repeatable)"},                                                  \
        {"timeout",                                                                                \
         't',                                                                                      \
         OPT_STRING,                                                                               \
         &(r)->timeout,                                                                            \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         "S",                                                                                      \
         "execution timeout in seconds (default: the server's)"},                                  \
    {                                                                                              \
        "file", 'f', OPT_STRING, &(r)->file, NULL, 0, 0, "FILE",                                   \
            "file to run, relative to the code folder (default: the entry point)"                  \
    }

/* v5 (`pyrt run --contract v5`): the request head -- `method`, `target` (path and
 * query) and `headers` (K=V; names lower-cased; host: localhost unless given),
 * encoded as the master encodes a request's (proto_put_http_head) -- and the body from
 * `body` (text, or @FILE; NULL for none). 0, or -1 with a message naming the flag. */
int exec_request_v5(const char *method, const char *target, const opt_list_t *headers,
                    const char *body, size_t max_body, buf_t *head, buf_t *body_out, char *err,
                    size_t errlen);

/* Builds the JSON body; --env goes to `env_field` ("env", or v2's "variables"). 0, or
 * -1 with a message in err naming the flag at fault. */
int exec_request_body(const exec_request_t *r, const char *env_field, size_t max_body, buf_t *out,
                      char *err, size_t errlen);

/* Shows an answer: the body to stdout, `status_line` and, for an error answer, its
 * message to stderr. Returns the exit status: 0 for 2xx, else 1. */
int exec_request_show(int status, const char *body, size_t body_len, const char *status_line);

#endif
