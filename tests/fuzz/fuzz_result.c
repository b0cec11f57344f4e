/* fuzz_result.c -- result_parse() on any RESULT payload: what passes is safe and exactly as sent.
 *
 * Fuzzes master/result.c, the check of a worker's answer before any of it reaches a
 * client (user code can write the worker's channel). Asserts, when it accepts: status
 * 200-599; each header line is "NAME: VALUE\r\n" with NAME an HTTP token that is not one
 * the master writes itself and VALUE free of CR, LF and NUL; the body lies inside the
 * payload and ends it; and encoding what it returned gives back the payload byte for
 * byte (nothing dropped, nothing invented). Either way `out` is freed without a leak. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "fuzz.h"
#include "master/pool_internal.h"
#include "proto/proto.h"

static bool token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
                  (c && memchr(extra, c, sizeof(extra) - 1));
        if (!ok)
            return false;
    }
    return true;
}

static bool reserved(const char *s, size_t n)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "connection",
                                        "x-request-id"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == n && strncasecmp(s, names[i], n) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    uint8_t *payload = malloc(len ? len : 1); /* exact size: over-reads are ASan errors */
    memcpy(payload, data, len);
    result_t res;
    const char *bad = result_parse(payload, len, &res);
    if (bad == NULL) {
        FUZZ_CHECK(res.status >= 200 && res.status <= 599, "status %u", res.status);
        FUZZ_CHECK(res.body_len == 0 ||
                       (res.body >= payload && res.body + res.body_len == payload + len),
                   "body is not the payload's last %u bytes", res.body_len);

        /* Re-encode from what came out; the header lines are read back here. */
        buf_t again = BUF_INIT, pairs = BUF_INIT;
        uint32_t count = 0;
        const char *h = res.headers.data ? res.headers.data : "";
        const char *end = h + res.headers.len;
        while (h < end) {
            const char *crlf = memmem(h, (size_t)(end - h), "\r\n", 2);
            FUZZ_CHECK(crlf != NULL, "a header line without CRLF");
            const char *colon = memchr(h, ':', (size_t)(crlf - h));
            FUZZ_CHECK(colon && colon + 1 < crlf && colon[1] == ' ', "a header line without ': '");
            size_t nlen = (size_t)(colon - h), vlen = (size_t)(crlf - colon - 2);
            FUZZ_CHECK(token(h, nlen) && !reserved(h, nlen), "header name '%.*s'", (int)nlen, h);
            FUZZ_CHECK(nlen <= RESULT_HEADER_NAME_MAX, "header name of %zu bytes", nlen);
            for (size_t i = 0; i < vlen; i++)
                FUZZ_CHECK(colon[2 + i] != '\r' && colon[2 + i] != '\n' && colon[2 + i] != '\0',
                           "header value with byte 0x%02x", (unsigned char)colon[2 + i]);
            proto_put_bytes(&pairs, h, nlen);
            proto_put_bytes(&pairs, colon + 2, vlen);
            count++;
            h = crlf + 2;
        }
        FUZZ_CHECK(count <= RESULT_HEADERS_MAX, "%u headers", count);
        proto_put_u32(&again, res.seq);
        proto_put_u32(&again, res.status);
        proto_put_u32(&again, res.flags);
        proto_put_u32(&again, count);
        buf_append(&again, pairs.data ? pairs.data : "", pairs.len);
        proto_put_bytes(&again, res.body ? (const void *)res.body : "", res.body_len);
        FUZZ_CHECK(again.len == len && memcmp(again.data, data, len) == 0,
                   "re-encoded: %zu bytes, the payload: %zu", again.len, len);
        buf_free(&again);
        buf_free(&pairs);
    }
    result_free(&res);
    free(payload);
    return 0;
}
