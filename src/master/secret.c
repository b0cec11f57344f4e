/* secret.c -- the server's secret (see secret.h). */
#include "master/secret.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "common/xalloc.h"

static const char *const secret_vars[] = {"INTERNAL_RUNTIME_KEY", "OPEN_RUNTIMES_SECRET"};

static char *key;
static size_t key_len;
static char *authorization; /* "Basic base64(opr:KEY)", v5 only */
static size_t authorization_len;
static bool disabled;

void secret_base64(const unsigned char *data, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
        /* Padding: '=' for each of the three bytes that was not there. */
        if (i + 2 >= len)
            out[o - 1] = '=';
        if (i + 1 >= len)
            out[o - 2] = '=';
    }
    out[o] = '\0';
}

static void make_authorization(void)
{
    size_t raw_len = 4 + key_len;
    unsigned char *raw = xmalloc(raw_len);
    /* Bytes for base64, not a string: no terminator wanted. */
    memcpy(raw, "opr:", 4); // NOLINT(bugprone-not-null-terminated-result)
    memcpy(raw + 4, key, key_len);
    authorization_len = 6 + 4 * ((raw_len + 2) / 3);
    authorization = xmalloc(authorization_len + 1);
    /* secret_base64() writes the rest and the terminator. */
    memcpy(authorization, "Basic ", 6); // NOLINT(bugprone-not-null-terminated-result)
    secret_base64(raw, raw_len, authorization + 6);
    memset(raw, 0, raw_len);
    free(raw);
}

/* getenv() points into the block the kernel reports for /proc/PID/environ (nothing
 * has called setenv before us), so overwriting it there hides the value from it. */
static int scrub(const char *name, char *err, size_t errlen)
{
    char *value = getenv(name);
    if (value == NULL)
        return 0;
    memset(value, 'x', strlen(value));
    if (unsetenv(name) != 0) {
        snprintf(err, errlen, "unsetenv(%s) failed", name);
        return -1;
    }
    return 0;
}

int secret_take(contract_t contract, char *err, size_t errlen)
{
    const char *name = contract == CONTRACT_V5 ? secret_vars[1] : secret_vars[0];
    const char *value = getenv(name);
    if (value == NULL || (*value == '\0' && contract != CONTRACT_V5)) {
        if (contract == CONTRACT_V5)
            snprintf(err, errlen,
                     "%s is not set: set it to the secret clients send in the "
                     "x-open-runtimes-secret header (empty disables the check)",
                     name);
        else
            snprintf(err, errlen,
                     "%s is not set or empty: set it to the key clients send in the "
                     "x-internal-challenge header",
                     name);
        return -1;
    }
    key_len = strlen(value);
    key = xstrndup(value, key_len);
    disabled = key_len == 0;
    if (contract == CONTRACT_V5 && !disabled)
        make_authorization();
    /* Both go, whichever the contract uses: user code sees neither. */
    for (size_t i = 0; i < sizeof(secret_vars) / sizeof(secret_vars[0]); i++)
        if (scrub(secret_vars[i], err, errlen) < 0)
            return -1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        snprintf(err, errlen, "prctl(PR_SET_DUMPABLE, 0) failed");
        return -1;
    }
    return 0;
}

bool secret_disabled(void)
{
    return disabled;
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

bool secret_is_authorization(const char *given, size_t given_len)
{
    return authorization != NULL &&
           secret_equal_ct(given, given_len, authorization, authorization_len);
}
