/* json.c -- escaped JSON strings: the master's own answers, and log records (see json.h). */
#include "common/json.h"

#include <string.h>

/* The length of the valid UTF-8 sequence at s (1-4), or 0 if the bytes there are not
 * one (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t utf8_sequence(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf; /* the second byte's range */
    if (c < 0x80)
        return 1;
    else if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else
        return 0;
    if (left < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

void json_append_text(buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    buf_append(b, "\"", 1);
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            size_t run = i;
            while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
                run++;
            buf_append(b, s + i, run - i); /* plain ASCII goes in one piece */
            i = run;
            continue;
        }
        if (c < 0x80) {
            switch (c) {
            case '"': buf_append(b, "\\\"", 2); break;
            case '\\': buf_append(b, "\\\\", 2); break;
            case '\n': buf_append(b, "\\n", 2); break;
            case '\r': buf_append(b, "\\r", 2); break;
            case '\t': buf_append(b, "\\t", 2); break;
            default: {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                buf_append(b, esc, sizeof(esc));
            }
            }
            i++;
            continue;
        }
        size_t n = utf8_sequence(p + i, len - i);
        if (n == 0) {
            buf_append(b, "\\ufffd", 6);
            i++;
        } else {
            buf_append(b, s + i, n);
            i += n;
        }
    }
    buf_append(b, "\"", 1);
}

void json_append_string(buf_t *b, const char *s, size_t len)
{
    json_append_text(b, s, len);
}

void json_error_body(buf_t *b, int code, const char *msg)
{
    buf_append_str(b, "{\"message\": ");
    json_append_string(b, msg, strlen(msg));
    buf_appendf(b, ", \"code\": %d}", code);
}
