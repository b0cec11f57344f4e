/* num.c -- numbers from text, whole or not at all (see num.h). */
#include "common/num.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

int num_parse_long(const char *text, long *out)
{
    if (text == NULL || *text == '\0')
        return -1;
    errno = 0;
    char *end;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int num_parse_double(const char *text, double *out)
{
    if (text == NULL || *text == '\0')
        return -1;
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int num_parse_size(const char *text, size_t *out)
{
    if (text == NULL || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0)
        return -1;
    unsigned long long mult = 1;
    if (*end != '\0') {
        switch (*end) {
        case 'k':
        case 'K': mult = 1024ULL; break;
        case 'm':
        case 'M': mult = 1024ULL * 1024; break;
        case 'g':
        case 'G': mult = 1024ULL * 1024 * 1024; break;
        default: return -1;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end != '\0')
            return -1;
    }
    if (v > SIZE_MAX / mult)
        return -1;
    *out = (size_t)(v * mult);
    return 0;
}
