/* contract.c -- contract names (see contract.h). */
#include "common/contract.h"

#include <string.h>

static const char *const names[] = {
    [CONTRACT_SEED] = "seed",
    [CONTRACT_V5] = "v5",
    [CONTRACT_V2] = "v2",
};

const char *contract_name(contract_t c)
{
    return names[c];
}

int contract_parse(const char *name, contract_t *out)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (contract_t)i;
            return 0;
        }
    }
    return -1;
}
