/* reqline.c -- the request line's syntax (see reqline.h). */
#include "master/reqline.h"

#include <string.h>

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

bool reqline_valid(const char *line, size_t len)
{
    const unsigned char *p = (const unsigned char *)line;
    const unsigned char *end = p + len;
    if (len == 0 || end[-1] != '\n')
        return false;
    end--;
    if (end > p && end[-1] == '\r')
        end--;

    const unsigned char *q = p;
    while (q < end && is_tchar(*q))
        q++;
    if (q == p || q >= end || *q != ' ')
        return false;
    p = ++q;
    while (q<end && * q> 0x20 && *q != 0x7f) /* stops at the space, too */
        q++;
    if (q == p || q >= end || *q != ' ')
        return false;
    q++;
    return end - q == 8 && memcmp(q, "HTTP/", 5) == 0 && is_digit(q[5]) && q[6] == '.' &&
           is_digit(q[7]);
}
