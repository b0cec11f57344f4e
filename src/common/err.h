/* err.h -- the `char *err` buffer that the layer which knows the name (file, package,
 * option) writes its error into, and the CLI prints once. */
#ifndef PYRT_ERR_H
#define PYRT_ERR_H

#define PYRT_ERR_LEN 512

#endif
