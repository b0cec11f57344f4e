/* buf.h -- a growable byte buffer that owns its memory.
 *
 * `data` is always NUL-terminated past `len` once anything was appended, so a buffer of
 * text can be handed to functions that want a C string. */
#ifndef PYRT_BUF_H
#define PYRT_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_init(buf_t *b);
void buf_free(buf_t *b);                  /* frees the memory, leaves b empty */
void buf_reserve(buf_t *b, size_t extra); /* room for `extra` more bytes + NUL */
void buf_append_grow(buf_t *b, const void *data, size_t len);

/* Appends, growing when needed; the data stays NUL-terminated (NULL data appends
 * nothing). Inline: the common case
 * (room already there) is a copy, and it runs many times per request. */
static inline void buf_append(buf_t *b, const void *data, size_t len)
{
    if (data == NULL) /* no bytes (an absent value): appends nothing */
        len = 0;
    if (b->len + len < b->cap) {
        if (len)
            memcpy(b->data + b->len, data, len);
        b->len += len;
        b->data[b->len] = '\0';
        return;
    }
    buf_append_grow(b, data, len);
}
void buf_append_str(buf_t *b, const char *s);
void buf_appendf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Numbers without printf (the access line is written per request): a decimal integer,
 * and `v` with exactly `decimals` digits after the point (0 to 6), rounded; NaN, the
 * infinities and magnitudes of 1e15 or more come out as 0. */
void buf_append_int(buf_t *b, long long v);
void buf_append_fixed(buf_t *b, double v, int decimals);
void buf_consume(buf_t *b, size_t n); /* drops the first n bytes */
void buf_clear(buf_t *b);             /* len = 0, keeps the memory */
char *buf_steal(buf_t *b);            /* caller owns the data, b is empty */

/* Appends the whole file at `path`. 0, or -1 with errno (EFBIG past `max` bytes). */
int buf_read_file(buf_t *b, const char *path, size_t max);

#endif
