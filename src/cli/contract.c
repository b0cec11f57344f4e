/* contract.c -- choosing the contract and reading its environment (see contract.h). */
#include "cli/contract.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int contract_resolve(const char *given, contract_t *out, char *err, size_t errlen)
{
    if (given && *given) {
        if (contract_parse(given, out) == 0)
            return 0;
        snprintf(err, errlen, "--contract %s: expected seed, v5 or v2", given);
        return -1;
    }
    bool has_v5 = getenv(CONTRACT_V5_SECRET_ENV) != NULL;
    bool has_seed = getenv(CONTRACT_SEED_KEY_ENV) != NULL;
    if (has_v5 && has_seed) {
        snprintf(err, errlen,
                 "both %s and %s are set: say which contract to serve with --contract "
                 "seed|v5|v2 (or PYRT_CONTRACT)",
                 CONTRACT_SEED_KEY_ENV, CONTRACT_V5_SECRET_ENV);
        return -1;
    }
    *out = has_v5 ? CONTRACT_V5 : CONTRACT_SEED;
    return 0;
}

int contract_check_secret(contract_t c, char *err, size_t errlen)
{
    if (c == CONTRACT_V5) {
        if (getenv(CONTRACT_V5_SECRET_ENV) == NULL) {
            snprintf(err, errlen,
                     "%s is not set: set it to the secret clients send in the "
                     "x-open-runtimes-secret header (empty disables the check)",
                     CONTRACT_V5_SECRET_ENV);
            return -1;
        }
        return 0;
    }
    const char *key = getenv(CONTRACT_SEED_KEY_ENV);
    if (key == NULL || *key == '\0') {
        snprintf(err, errlen,
                 "%s is not set or empty: set it to the key clients send in the "
                 "x-internal-challenge header",
                 CONTRACT_SEED_KEY_ENV);
        return -1;
    }
    return 0;
}

const char *contract_entrypoint_from_env(void)
{
    static const char *const vars[] = {"OPEN_RUNTIMES_ENTRYPOINT", "INTERNAL_RUNTIME_ENTRYPOINT"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return v;
    }
    return NULL;
}
