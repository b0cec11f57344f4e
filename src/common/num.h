/* num.h -- numbers from text, whole or not at all: for options (cli/opts.c), request
 * flags and the zygote's --user. */
#ifndef PYRT_NUM_H
#define PYRT_NUM_H

#include <stddef.h>

/* 0 on success, -1 if the text is not a valid value (empty, trailing bytes, overflow). */
int num_parse_long(const char *text, long *out);
int num_parse_double(const char *text, double *out); /* finite only */
int num_parse_size(const char *text, size_t *out);   /* bytes, K/M/G suffix (1024-based) */

#endif
