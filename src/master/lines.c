/* lines.c -- a byte stream cut into lines of bounded length, for the workers' output
 * (output.c). Pure: bytes in, lines out through a callback. */
#include <string.h>

#include "master/pool_internal.h"

void lines_split(buf_t *partial, const char *data, size_t len, size_t max, lines_emit_fn emit,
                 void *ctx)
{
    buf_append(partial, data, len);
    if (partial->len == 0)
        return;
    size_t start = 0;
    for (;;) {
        const char *p = partial->data + start;
        size_t avail = partial->len - start;
        const char *nl = memchr(p, '\n', avail);
        size_t line = nl ? (size_t)(nl - p) : avail;
        if (line >= max) { /* split a long line */
            emit(ctx, p, max);
            start += max;
            continue;
        }
        if (nl == NULL)
            break;
        emit(ctx, p, line);
        start += line + 1;
    }
    buf_consume(partial, start);
}

void lines_flush(buf_t *partial, lines_emit_fn emit, void *ctx)
{
    if (partial->len)
        emit(ctx, partial->data, partial->len);
    buf_clear(partial);
}
