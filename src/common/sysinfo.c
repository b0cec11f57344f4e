/* sysinfo.c -- facts about the machine (see sysinfo.h). */
#include "common/sysinfo.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal integer that is the whole of `text`: 0, or -1. */
static int whole_number(const char *text, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* A cgroup file's "A B" (cpu.max: "max 100000" or "50000 100000") or "A": how many
 * were read (1 or 2; *a_is_max for "max"), or -1. */
static int read_two_numbers(const char *path, long long *a, long long *b, int *a_is_max)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[96] = "";
    bool got = fgets(line, sizeof(line), f) != NULL;
    (void)fclose(f);
    char first[32] = "", second[32] = "";
    int n = got ? sscanf(line, "%31s %31s", first, second) : 0;
    if (n < 1)
        return -1;
    *a_is_max = strcmp(first, "max") == 0;
    if (!*a_is_max && whole_number(first, a) < 0)
        return -1;
    if (n == 2 && whole_number(second, b) < 0)
        return 1; /* as before: only the first was a number */
    return n;
}

static int quota_cpus(void)
{
    long long quota = 0, period = 0;
    int is_max = 0;
    if (read_two_numbers("/sys/fs/cgroup/cpu.max", &quota, &period, &is_max) == 2) {
        if (!is_max && quota > 0 && period > 0)
            return (int)((quota + period - 1) / period);
        return 0;
    }
    long long dummy;
    if (read_two_numbers("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", &quota, &dummy, &is_max) >= 1 &&
        read_two_numbers("/sys/fs/cgroup/cpu/cpu.cfs_period_us", &period, &dummy, &is_max) >= 1 &&
        quota > 0 && period > 0)
        return (int)((quota + period - 1) / period);
    return 0;
}

int sys_usable_cpus(void)
{
    cpu_set_t set;
    int cpus = 1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        cpus = CPU_COUNT(&set);
    int quota = quota_cpus();
    if (quota > 0 && quota < cpus)
        cpus = quota;
    return cpus > 0 ? cpus : 1;
}

unsigned long long sys_memory_limit(void)
{
    /* v2 says "max" for none; v1 a number near 2^63 rounded to pages. */
    static const char *const files[] = {"/sys/fs/cgroup/memory.max",
                                        "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        FILE *f = fopen(files[i], "r");
        if (f == NULL)
            continue;
        char text[64] = "";
        bool read = fgets(text, sizeof(text), f) != NULL;
        (void)fclose(f);
        if (!read || strncmp(text, "max", 3) == 0)
            return 0;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno != 0 || end == text || v >= (1ULL << 62))
            return 0;
        return v;
    }
    return 0;
}
