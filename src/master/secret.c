/* secret.c -- the INTERNAL_RUNTIME_KEY (see secret.h). */
#include "master/secret.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "common/xalloc.h"

#define KEY_ENV "INTERNAL_RUNTIME_KEY"

static char *key;
static size_t key_len;

int secret_take(char *err, size_t errlen)
{
    char *value = getenv(KEY_ENV);
    if (value == NULL || *value == '\0') {
        snprintf(err, errlen,
                 "%s is not set or empty: set it to the key clients send in the "
                 "x-internal-challenge header",
                 KEY_ENV);
        return -1;
    }
    key_len = strlen(value);
    key = xstrndup(value, key_len);

    /* getenv() points into the block the kernel reports for /proc/PID/environ (nothing
     * has called setenv before us), so overwriting it there hides the key from it. */
    memset(value, 'x', key_len);
    if (unsetenv(KEY_ENV) != 0) {
        snprintf(err, errlen, "unsetenv(%s) failed", KEY_ENV);
        return -1;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        snprintf(err, errlen, "prctl(PR_SET_DUMPABLE, 0) failed");
        return -1;
    }
    return 0;
}

bool secret_equal_ct(const char *given, size_t given_len, const char *want, size_t want_len)
{
    /* Walk every byte of the given value, comparing it with the key repeated: the time
     * taken depends on given_len alone, which the client already knows. The lengths
     * take part in the result, not in the control flow. */
    volatile uint8_t diff = 0;
    size_t d = given_len ^ want_len;
    for (size_t i = 0; i < sizeof(d); i++)
        diff |= (uint8_t)(d >> (8 * i));
    if (want_len == 0)
        return false;
    for (size_t i = 0; i < given_len; i++)
        diff |= (uint8_t)given[i] ^ (uint8_t)want[i % want_len];
    return diff == 0 && given_len != 0;
}

bool secret_matches(const char *given, size_t given_len)
{
    return secret_equal_ct(given, given_len, key, key_len);
}
