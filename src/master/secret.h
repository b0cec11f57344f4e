/* secret.h -- the INTERNAL_RUNTIME_KEY: taken once, hidden, compared in constant time.
 *
 * secret_take() copies the key out of the environment, overwrites it in the
 * environment block the kernel shows in /proc/PID/environ, removes the variable and
 * makes the process non-dumpable (so /proc/PID/mem and /proc/PID/environ are closed to
 * processes of the same user). Only the master calls it; the zygote is exec'd with an
 * environment that never held the key, so no worker's memory ever does. */
#ifndef PYRT_SECRET_H
#define PYRT_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* 0, or -1 with err naming INTERNAL_RUNTIME_KEY when it is unset or empty. */
int secret_take(char *err, size_t errlen);

/* Does `given` equal the key? Runs in time that depends only on given_len: no early
 * exit on the length or on the first differing byte. */
bool secret_matches(const char *given, size_t given_len);

/* The comparison itself, exposed for the unit tests. */
bool secret_equal_ct(const char *given, size_t given_len, const char *key, size_t key_len);

#endif
