/* writev.c -- every byte of an iovec array to one fd (see writev.h). */
#include "common/writev.h"

#include <errno.h>
#include <stddef.h>

int writev_fully(int fd, struct iovec *iov, int count)
{
    for (;;) {
        while (count > 0 && iov->iov_len == 0) { /* nothing to write: no 0 from writev */
            iov++;
            count--;
        }
        if (count == 0)
            return 0;
        ssize_t n = writev(fd, iov, count);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        while (count > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
}
