/* fuzz_tar_link.c -- tar_link_target_inside() on any link and target: agrees with a path walk.
 *
 * Fuzzes the lexical check of tar/extract.c that refuses a symlink member whose target
 * leaves the extraction folder. Asserts its verdict equals this file's own walk: start
 * in the link's folder, "." stays, ".." goes up (never above the top), anything else
 * goes down; an empty or absolute target is refused. Member paths with a ".."
 * component are skipped: extraction refuses those before it asks (member_path).
 * Input: the member path, a NUL, the symlink's text. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "tar/tar.h"

/* Calls fn(component, length) for each '/'-separated component; stops when fn is false. */
static bool each_component(const char *s, bool (*fn)(void *, const char *, size_t), void *ctx)
{
    for (const char *p = s;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (!fn(ctx, p, n))
            return false;
        if (slash == NULL)
            return true;
        p = slash + 1;
    }
}

static bool is_dotdot(const char *p, size_t n)
{
    return n == 2 && p[0] == '.' && p[1] == '.';
}

static bool no_dotdot(void *ctx, const char *p, size_t n)
{
    (void)ctx;
    return !is_dotdot(p, n);
}

typedef struct walk {
    long depth;
} walk_t;

static bool down(void *ctx, const char *p, size_t n)
{
    walk_t *w = ctx;
    if (n > 0 && !(n == 1 && p[0] == '.'))
        w->depth++;
    return true;
}

static bool step(void *ctx, const char *p, size_t n)
{
    walk_t *w = ctx;
    if (is_dotdot(p, n))
        return --w->depth >= 0;
    return down(ctx, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    const uint8_t *nul = memchr(data, '\0', len);
    if (nul == NULL)
        return 0;
    char *link = strndup((const char *)data, (size_t)(nul - data));
    char *target = strndup((const char *)nul + 1, len - (size_t)(nul - data) - 1);
    if (!each_component(link, no_dotdot, NULL))
        goto out;

    /* The link's folder: every component of its path but the last. */
    walk_t w = {0};
    char *dir = strdup(link);
    char *last = strrchr(dir, '/');
    if (last) {
        *last = '\0';
        each_component(dir, down, &w);
    }
    free(dir);
    bool want = target[0] != '\0' && target[0] != '/' && each_component(target, step, &w);
    int got = tar_link_target_inside(link, target);
    FUZZ_CHECK(got == (want ? 1 : 0), "link '%s' -> '%s': %d, the walk says %d", link, target, got,
               want);
out:
    free(link);
    free(target);
    return 0;
}
