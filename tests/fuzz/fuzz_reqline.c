/* fuzz_reqline.c -- reqline_valid() on any line: agrees with the request-line grammar, read apart.
 *
 * Fuzzes master/reqline.c, the 400 that a malformed request line gets before http-parser
 * sees it. Asserts its verdict equals this file's own reading of the grammar (reqline.h):
 * a method token, one space, a target of bytes above 0x20 but DEL, one space,
 * HTTP/DIGIT.DIGIT, then LF or CRLF -- split on spaces here, scanned there. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "master/reqline.h"

static bool token_char(uint8_t c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (c >= 0x80 || c <= 0x20)
        return false;
    return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') ||
           memchr(extra, c, sizeof(extra) - 1) != NULL;
}

static bool reference(const uint8_t *s, size_t len)
{
    if (len == 0 || s[len - 1] != '\n')
        return false;
    len--;
    if (len > 0 && s[len - 1] == '\r')
        len--;
    /* Exactly three parts between two single spaces. */
    size_t sp1 = 0, sp2 = 0, spaces = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ' ')
            spaces++ == 0 ? (sp1 = i) : (sp2 = i);
    if (spaces != 2 || sp1 == 0 || sp2 == sp1 + 1)
        return false;
    for (size_t i = 0; i < sp1; i++)
        if (!token_char(s[i]))
            return false;
    for (size_t i = sp1 + 1; i < sp2; i++)
        if (s[i] <= 0x20 || s[i] == 0x7f)
            return false;
    const uint8_t *v = s + sp2 + 1;
    size_t vlen = len - sp2 - 1;
    return vlen == 8 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
           v[7] >= '0' && v[7] <= '9';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    /* An exact-size copy: a read past the line is an ASan error. */
    char *line = malloc(len ? len : 1);
    memcpy(line, data, len);
    bool got = reqline_valid(line, len);
    bool want = reference(data, len);
    FUZZ_CHECK(got == want, "reqline_valid says %d, the grammar says %d (%zu bytes)", got, want,
               len);
    free(line);
    return 0;
}
