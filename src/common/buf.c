/* buf.c -- a growable byte buffer that owns its memory. */
#include "common/buf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

void buf_init(buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_free(buf_t *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reserve(buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append_grow(buf_t *b, const void *data, size_t len)
{
    if (data == NULL)
        len = 0;
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_append_int(buf_t *b, long long v)
{
    char digits[24];
    size_t n = 0;
    /* Negated as unsigned: LLONG_MIN has no positive long long. */
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[sizeof(digits) - ++n] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        digits[sizeof(digits) - ++n] = '-';
    buf_append(b, digits + sizeof(digits) - n, n);
}

void buf_append_fixed(buf_t *b, double v, int decimals)
{
    static const long long scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    if (decimals < 0)
        decimals = 0;
    if (decimals > 6)
        decimals = 6;
    if (!(v > -1e15 && v < 1e15)) /* also NaN */
        v = 0;
    bool negative = v < 0;
    double scaled = (negative ? -v : v) * (double)scale[decimals] + 0.5;
    long long units = (long long)scaled;
    if (negative && units > 0)
        buf_append(b, "-", 1);
    buf_append_int(b, units / scale[decimals]);
    if (decimals == 0)
        return;
    char frac[8];
    long long rest = units % scale[decimals];
    for (int i = decimals - 1; i >= 0; i--) {
        frac[i] = (char)('0' + rest % 10);
        rest /= 10;
    }
    buf_append(b, ".", 1);
    buf_append(b, frac, (size_t)decimals);
}

void buf_append_str(buf_t *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_appendf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        buf_append(b, small, (size_t)n);
        return;
    }
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    (void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_consume(buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void buf_clear(buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *buf_steal(buf_t *b)
{
    char *p = b->data;
    buf_init(b);
    return p;
}

int buf_read_file(buf_t *b, const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    char chunk[64 * 1024];
    size_t n, total = 0;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        total += n;
        if (total > max) {
            errno = EFBIG;
            rc = -1;
            break;
        }
        buf_append(b, chunk, n);
    }
    if (rc == 0 && ferror(f)) {
        errno = EIO;
        rc = -1;
    }
    int saved = errno;
    fclose(f);
    errno = saved;
    return rc;
}
