/* writev.h -- every byte of an iovec array to one fd: the loop around writev() that a
 * short write or a signal needs, in one place. */
#ifndef PYRT_WRITEV_H
#define PYRT_WRITEV_H

#include <sys/uio.h>

/* Writes all of iov[0..count) to fd (a blocking one), retrying after EINTR and short
 * writes; consumes `iov` (its entries are advanced). 0, or -1 with errno (a write that
 * wrote nothing says EIO). */
int writev_fully(int fd, struct iovec *iov, int count);

#endif
