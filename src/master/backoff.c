/* backoff.c -- restart storms and back-off: how long to wait before the next worker
 * when workers keep dying, and whose requests get the error at once meanwhile. Pure:
 * the caller runs the timer (see pool_internal.h). */
#include <stdio.h>
#include <string.h>

#include "master/pool_internal.h"

unsigned backoff_ms(unsigned failures)
{
    if (failures <= 1)
        return 0;
    unsigned ms = BACKOFF_BASE_MS;
    for (unsigned i = 2; i < failures && ms < BACKOFF_CAP_MS; i++)
        ms *= 2;
    return ms < BACKOFF_CAP_MS ? ms : BACKOFF_CAP_MS;
}

static storm_t *storm_find(const backoff_t *b, const char *target)
{
    for (unsigned i = 0; i < STORM_TARGETS; i++)
        if (b->storms[i].deaths && strcmp(b->storms[i].target, target) == 0)
            return (storm_t *)&b->storms[i];
    return NULL;
}

void backoff_death(backoff_t *b, const char *target, const char *error)
{
    b->streak++;
    if (target == NULL)
        return;
    storm_t *st = storm_find(b, target);
    if (st == NULL) {
        st = &b->storms[b->storm_next];
        b->storm_next = (b->storm_next + 1) % STORM_TARGETS;
        snprintf(st->target, sizeof(st->target), "%s", target);
        st->deaths = 0;
    }
    st->deaths++;
    snprintf(st->error, sizeof(st->error), "%s", error ? error : "");
}

void backoff_answered(backoff_t *b, const char *target)
{
    b->streak = 0;
    storm_t *st = storm_find(b, target);
    if (st)
        st->deaths = 0;
}

unsigned backoff_due(const backoff_t *b)
{
    return b->streak > b->waited ? backoff_ms(b->streak) : 0;
}

void backoff_begin(backoff_t *b)
{
    b->active = true;
}

void backoff_end(backoff_t *b)
{
    b->active = false;
    b->waited = b->streak;
}

const char *backoff_storm_error(const backoff_t *b, const char *target)
{
    const storm_t *st = b->active ? storm_find(b, target) : NULL;
    return st && st->deaths >= STORM_ANSWER_AT ? st->error : NULL;
}
