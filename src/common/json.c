/* json.c -- escaped JSON strings for the master's own answers (see json.h). */
#include "common/json.h"

#include <string.h>

void json_append_string(buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': buf_append(b, "\\\"", 2); break;
        case '\\': buf_append(b, "\\\\", 2); break;
        case '\n': buf_append(b, "\\n", 2); break;
        case '\r': buf_append(b, "\\r", 2); break;
        case '\t': buf_append(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                buf_append(b, esc, sizeof(esc));
            } else {
                buf_append(b, (const char *)&s[i], 1);
            }
        }
    }
    buf_append(b, "\"", 1);
}

void json_error_body(buf_t *b, int code, const char *msg)
{
    buf_append_str(b, "{\"message\": ");
    json_append_string(b, msg, strlen(msg));
    buf_appendf(b, ", \"code\": %d}", code);
}
