/* exec_request.c -- the execution body from flags, and showing answers (see
 * exec_request.h). The payload is checked with yajl's tree parser so that a typo is
 * reported against the flag, not as a 400 from the server. */
#include "cli/exec_request.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "common/json.h"
#include "common/num.h"
#include "common/xalloc.h"
#include "proto/proto.h"

static int append_payload(const char *given, size_t max_body, buf_t *out, char *err, size_t errlen)
{
    buf_t text = BUF_INIT;
    if (given[0] == '@') {
        if (buf_read_file(&text, given + 1, max_body) < 0) {
            if (errno == EFBIG)
                snprintf(err, errlen, "--payload @%s: larger than the body limit (%zu bytes)",
                         given + 1, max_body);
            else
                snprintf(err, errlen, "--payload @%s: %s", given + 1, strerror(errno));
            buf_free(&text);
            return -1;
        }
    } else {
        buf_append_str(&text, given);
    }
    if (memchr(text.data ? text.data : "", '\0', text.len) != NULL) {
        snprintf(err, errlen, "--payload: not JSON (it holds a NUL byte)");
        buf_free(&text);
        return -1;
    }
    char why[256] = "";
    yajl_val tree = yajl_tree_parse(text.data ? text.data : "", why, sizeof(why));
    if (tree == NULL) {
        char *nl = strchr(why, '\n');
        if (nl)
            *nl = '\0';
        snprintf(err, errlen, "--payload: not JSON (%s); a string must be quoted: '\"text\"'",
                 why[0] ? why : "empty");
        buf_free(&text);
        return -1;
    }
    yajl_tree_free(tree);
    buf_append(out, text.data, text.len);
    buf_free(&text);
    return 0;
}

static int append_pairs(const opt_list_t *list, const char *flag, buf_t *out, char *err,
                        size_t errlen)
{
    buf_append_str(out, "{");
    for (int i = 0; i < list->count; i++) {
        const char *item = list->items[i];
        const char *eq = strchr(item, '=');
        if (eq == NULL || eq == item) {
            snprintf(err, errlen, "--%s %s: expected K=V", flag, item);
            return -1;
        }
        if (i > 0)
            buf_append_str(out, ", ");
        json_append_string(out, item, (size_t)(eq - item));
        buf_append_str(out, ": ");
        json_append_string(out, eq + 1, strlen(eq + 1));
    }
    buf_append_str(out, "}");
    return 0;
}

int exec_request_body(const exec_request_t *r, const char *env_field, size_t max_body, buf_t *out,
                      char *err, size_t errlen)
{
    buf_append_str(out, "{");
    json_append_string(out, env_field, strlen(env_field));
    buf_append_str(out, ": ");
    if (append_pairs(&r->env, "env", out, err, errlen) < 0)
        return -1;
    buf_append_str(out, ", \"headers\": ");
    if (append_pairs(&r->headers, "header", out, err, errlen) < 0)
        return -1;
    if (r->timeout) {
        double t;
        if (num_parse_double(r->timeout, &t) < 0 || !(t > 0) || !isfinite(t)) {
            snprintf(err, errlen, "--timeout %s: expected a number of seconds > 0", r->timeout);
            return -1;
        }
        buf_appendf(out, ", \"timeout\": %.17g", t);
    }
    if (r->file) {
        buf_append_str(out, ", \"file\": ");
        json_append_string(out, r->file, strlen(r->file));
    }
    if (r->path) {
        buf_append_str(out, ", \"path\": ");
        json_append_string(out, r->path, strlen(r->path));
    }
    if (r->payload) {
        buf_append_str(out, ", \"payload\": ");
        if (append_payload(r->payload, max_body, out, err, errlen) < 0)
            return -1;
    }
    buf_append_str(out, "}");
    return 0;
}

int exec_request_v5(const char *method, const char *target, const opt_list_t *headers,
                    const char *body, size_t max_body, buf_t *head, buf_t *body_out, char *err,
                    size_t errlen)
{
    if (target[0] != '/') {
        snprintf(err, errlen, "--path %s: expected a path starting with /", target);
        return -1;
    }
    buf_t pairs = BUF_INIT;
    uint32_t count = 0;
    bool has_host = false;
    for (int i = 0; i < headers->count; i++) {
        const char *item = headers->items[i];
        const char *eq = strchr(item, '=');
        if (eq == NULL || eq == item) {
            snprintf(err, errlen, "--header %s: expected K=V", item);
            buf_free(&pairs);
            return -1;
        }
        char *name = xstrndup(item, (size_t)(eq - item));
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        has_host |= strcmp(name, "host") == 0;
        proto_put_bytes(&pairs, name, strlen(name));
        proto_put_bytes(&pairs, eq + 1, strlen(eq + 1));
        free(name);
        count++;
    }
    if (!has_host) {
        proto_put_bytes(&pairs, "host", 4);
        proto_put_bytes(&pairs, "localhost", 9);
        count++;
    }
    proto_put_http_head(head, method, strlen(method), target, strlen(target), count, &pairs);
    buf_free(&pairs);
    if (body == NULL)
        return 0;
    if (body[0] != '@') {
        buf_append_str(body_out, body);
        return 0;
    }
    if (buf_read_file(body_out, body + 1, max_body) < 0) {
        if (errno == EFBIG)
            snprintf(err, errlen, "--body @%s: larger than the body limit (%zu bytes)", body + 1,
                     max_body);
        else
            snprintf(err, errlen, "--body @%s: %s", body + 1, strerror(errno));
        return -1;
    }
    return 0;
}

/* The "message" of an error answer, or NULL when the body is not one. Caller frees. */
static char *error_message(const char *body, size_t len)
{
    if (len == 0 || body[0] != '{' || memchr(body, '\0', len) != NULL)
        return NULL;
    char *text = xstrndup(body, len);
    yajl_val tree = yajl_tree_parse(text, NULL, 0);
    free(text);
    if (tree == NULL)
        return NULL;
    const char *path[] = {"message", NULL};
    yajl_val msg = yajl_tree_get(tree, path, yajl_t_string);
    char *out = msg ? xstrdup(YAJL_GET_STRING(msg)) : NULL;
    yajl_tree_free(tree);
    return out;
}

static void write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* a closed pipe: nothing more to do */
        data += n;
        len -= (size_t)n;
    }
}

int exec_request_show(int status, const char *body, size_t body_len, const char *status_line)
{
    bool ok = status >= 200 && status < 300;
    write_all(STDOUT_FILENO, body, body_len);
    if (body_len > 0 && body[body_len - 1] != '\n' && isatty(STDOUT_FILENO))
        write_all(STDOUT_FILENO, "\n", 1);
    if (!ok) {
        char *msg = error_message(body, body_len);
        if (msg) {
            fprintf(stderr, "%s%s", msg, msg[0] && msg[strlen(msg) - 1] == '\n' ? "" : "\n");
            free(msg);
        }
    }
    fprintf(stderr, "%s\n", status_line);
    return ok ? 0 : 1;
}
