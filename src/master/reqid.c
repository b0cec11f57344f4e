/* reqid.c -- request ids (see reqid.h). */
#include "master/reqid.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t seed;
static uint64_t counter;

void reqid_seed(void)
{
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
        /* No entropy source: ids stay unique within the process, just guessable. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)getpid();
    }
}

bool reqid_valid(const char *id, size_t len)
{
    if (len < 1 || len > REQID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

void reqid_generate(char out[REQID_MAX + 1])
{
    /* splitmix64's finaliser is a bijection of 64-bit words, so distinct inputs
     * (seed + n for n < 2^64) give distinct ids. */
    uint64_t z = seed + ++counter * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    snprintf(out, REQID_MAX + 1, "%016llx", (unsigned long long)z);
}
