/* xalloc.h -- allocation that never returns NULL.
 *
 * Small, fixed allocations (structs, buffers whose size is already bounded by a
 * configured limit) use these: running out of memory there is not recoverable, so the
 * process says how much it wanted and aborts, as Redis' zmalloc does. Sizes that a
 * client chooses are bounded by the caller *before* they get here. */
#ifndef PYRT_XALLOC_H
#define PYRT_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
