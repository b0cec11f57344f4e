/* result.c -- a worker's RESULT frame, checked before anything in it reaches a client.
 * Pure: bytes in, status, header lines and body (or what is wrong) out. */
#include <string.h>
#include <strings.h>

#include "master/pool_internal.h"

static bool is_token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The master writes these itself: a worker's would break or confuse the framing. */
static const char *const reserved[] = {"content-length", "transfer-encoding", "connection",
                                       "x-request-id"};

static bool header_name_ok(const uint8_t *name, uint32_t len)
{
    if (len == 0 || len > RESULT_HEADER_NAME_MAX)
        return false;
    for (uint32_t i = 0; i < len; i++)
        if (!is_token_char(name[i]))
            return false;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strlen(reserved[i]) == len && strncasecmp((const char *)name, reserved[i], len) == 0)
            return false;
    return true;
}

static bool header_value_ok(const uint8_t *value, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
            return false;
    return true;
}

const char *result_parse(const uint8_t *payload, size_t len, result_t *out)
{
    memset(out, 0, sizeof(*out));
    buf_init(&out->headers);
    proto_reader_t r;
    proto_reader_init(&r, payload, len);
    out->seq = proto_get_u32(&r);
    out->status = proto_get_u32(&r);
    out->flags = proto_get_u32(&r);
    uint32_t count = proto_get_u32(&r);
    if (r.error)
        return "truncated before its headers";
    if (out->status < 200 || out->status > 599)
        return "status out of range";
    if (count > RESULT_HEADERS_MAX)
        return "too many headers";
    for (uint32_t i = 0; i < count; i++) {
        uint32_t nlen, vlen;
        const uint8_t *name = proto_get_bytes(&r, &nlen);
        const uint8_t *value = proto_get_bytes(&r, &vlen);
        if (r.error)
            return "truncated in its headers";
        if (!header_name_ok(name, nlen))
            return "a header name that is not allowed";
        if (!header_value_ok(value, vlen))
            return "a header value with CR, LF or NUL";
        buf_append(&out->headers, name, nlen);
        buf_append(&out->headers, ": ", 2);
        buf_append(&out->headers, value, vlen);
        buf_append(&out->headers, "\r\n", 2);
    }
    out->body = proto_get_bytes(&r, &out->body_len);
    if (r.error)
        return "truncated in its body";
    if (r.left != 0)
        return "bytes after its body";
    return NULL;
}

void result_free(result_t *r)
{
    buf_free(&r->headers);
}
