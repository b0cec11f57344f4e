/* secret.h -- the server's secret: taken once, hidden, compared in constant time.
 *
 * Which variable holds it depends on the contract: INTERNAL_RUNTIME_KEY (seed, v2:
 * clients send it in x-internal-challenge) or OPEN_RUNTIMES_SECRET (v5: in
 * x-open-runtimes-secret, and as `Authorization: Basic base64("opr:" + secret)`).
 *
 * secret_take() copies the secret out of the environment, overwrites both variables in
 * the environment block the kernel shows in /proc/PID/environ, removes them and makes
 * the process non-dumpable (so /proc/PID/mem and /proc/PID/environ are closed to
 * processes of the same user). Only the master calls it; the zygote is exec'd with an
 * environment that never held either variable, so no worker's memory ever does. */
#ifndef PYRT_SECRET_H
#define PYRT_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "master/config.h"

/* 0, or -1 with err naming the variable when it is missing (or empty, outside v5). */
int secret_take(contract_t contract, char *err, size_t errlen);

/* v5 with OPEN_RUNTIMES_SECRET set to "": every request is let in. */
bool secret_disabled(void);

/* Does `given` equal the secret? Runs in time that depends only on given_len: no early
 * exit on the length or on the first differing byte. */
bool secret_matches(const char *given, size_t given_len);

/* Is `given` the executor's Authorization value for the secret, "Basic " +
 * base64("opr:" + secret)? Constant time, as above. Such a line never reaches user
 * code. */
bool secret_is_authorization(const char *given, size_t given_len);

/* The comparison itself, exposed for the unit tests. */
bool secret_equal_ct(const char *given, size_t given_len, const char *key, size_t key_len);

/* Standard base64 with padding of `len` bytes, appended to out (NUL-terminated);
 * exposed for the unit tests. out must hold 4 * ((len + 2) / 3) + 1 bytes. */
void secret_base64(const unsigned char *data, size_t len, char *out);

#endif
