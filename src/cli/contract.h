/* contract.h -- which executor contract a command speaks (CONTRACT.md section 5), and
 * what each one takes from the environment: its secret and its entry point. */
#ifndef PYRT_CONTRACT_H
#define PYRT_CONTRACT_H

#include <stddef.h>

#include "master/config.h"

#define CONTRACT_SEED_KEY_ENV "INTERNAL_RUNTIME_KEY"
#define CONTRACT_V5_SECRET_ENV "OPEN_RUNTIMES_SECRET"

/* `given` is --contract (or PYRT_CONTRACT), NULL when neither was set: then v5 when
 * OPEN_RUNTIMES_SECRET is set and INTERNAL_RUNTIME_KEY is not, else seed, and an
 * error when both are set. 0, or -1 with a message in err. */
int contract_resolve(const char *given, contract_t *out, char *err, size_t errlen);

/* The secret the contract needs is in the environment: v5's OPEN_RUNTIMES_SECRET (set,
 * possibly empty), the others' INTERNAL_RUNTIME_KEY (set and not empty). 0, or -1 with
 * a message naming the variable. */
int contract_check_secret(contract_t c, char *err, size_t errlen);

/* The entry point when no --entrypoint / ENTRYPOINT_NAME was given: the executors'
 * variables OPEN_RUNTIMES_ENTRYPOINT, then INTERNAL_RUNTIME_ENTRYPOINT; NULL if none. */
const char *contract_entrypoint_from_env(void);

#endif
