/* fuzz_ids.c -- execlog_id_valid() and reqid_valid() on any bytes: agree with their stated rules.
 *
 * Fuzzes the checks of ids that a client chooses: x-request-id (master/reqid.c) and the
 * v5 log id, which names files in the logs folder (master/execlog.c). Asserts each
 * verdict equals the rule its header states -- 1-128 characters of A-Za-z0-9._-, and
 * for a log id neither "." nor ".." -- and that a valid log id makes file names
 * "{id}_logs.log" and "{id}_errors.log" that are one path component each. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "master/execlog.h"
#include "master/reqid.h"

static bool id_rule(const uint8_t *s, size_t len)
{
    static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789._-";
    if (len < 1 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == 0 || memchr(allowed, s[i], sizeof(allowed) - 1) == NULL)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    char *id = malloc(len ? len : 1); /* exact size, not NUL-terminated */
    memcpy(id, data, len);
    bool req = reqid_valid(id, len);
    bool log = execlog_id_valid(id, len);
    bool want_req = id_rule(data, len);
    bool want_log = want_req && !(len == 1 && data[0] == '.') &&
                    !(len == 2 && data[0] == '.' && data[1] == '.');
    FUZZ_CHECK(req == want_req, "reqid_valid: %d, the rule: %d (%zu bytes)", req, want_req, len);
    FUZZ_CHECK(log == want_log, "execlog_id_valid: %d, the rule: %d (%zu bytes)", log, want_log,
               len);
    if (log) {
        char name[EXECLOG_ID_MAX + 16];
        snprintf(name, sizeof(name), "%.*s_errors.log", (int)len, id);
        FUZZ_CHECK(strchr(name, '/') == NULL && strcmp(name, ".") && strcmp(name, ".."),
                   "file name '%s'", name);
        FUZZ_CHECK(strlen(name) == len + strlen("_errors.log"), "file name cut: '%s'", name);
    }
    free(id);
    return 0;
}
