/* contract.h -- the executor contracts pyrt speaks (CONTRACT.md section 5), by name.
 * Shared by the CLI, the master and the zygote; which one a command uses is decided in
 * cli/contract.c. */
#ifndef PYRT_COMMON_CONTRACT_H
#define PYRT_COMMON_CONTRACT_H

typedef enum contract {
    CONTRACT_SEED, /* the 2022 README: POST a JSON body, x-internal-challenge */
    CONTRACT_V5,   /* open-runtimes v5: any method and path, main(context), log files */
    CONTRACT_V2,   /* the executor's v2: {"variables", "payload"} in, an envelope out */
} contract_t;

/* "seed", "v5" or "v2". */
const char *contract_name(contract_t c);

/* 0 and *out for one of the names above, else -1. */
int contract_parse(const char *name, contract_t *out);

#endif
