/* reqid.h -- request ids: the client's own when valid, else generated.
 *
 * An id tags the execution's log lines and comes back as x-request-id. A client may
 * bring its own: 1-128 characters of A-Za-z0-9._- (anything else is replaced). Generated
 * ids are 16 hex digits: a bijective mix (splitmix64) of a per-process random seed plus
 * a counter, so they never repeat within a process and do not reveal the count. */
#ifndef PYRT_REQID_H
#define PYRT_REQID_H

#include <stdbool.h>
#include <stddef.h>

#define REQID_MAX 128

void reqid_seed(void);
bool reqid_valid(const char *id, size_t len);
void reqid_generate(char out[REQID_MAX + 1]);

#endif
