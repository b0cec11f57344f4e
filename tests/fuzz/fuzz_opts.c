/* fuzz_opts.c -- opts_parse() on any argv and environment, with a spec table like `pyrt serve`'s.
 *
 * Fuzzes cli/opts.c (and the number parsers of common/num.c behind it). Asserts: on
 * success every number that was set lies within its spec's bounds (and is finite),
 * positional arguments fit their array, each string and list item points at an argv
 * element or the environment value it came from, a list holds at most its 64; on
 * failure the message is non-empty and ends within PYRT_ERR_LEN (err is exactly that
 * long, so ASan sees an overrun).
 * Input: byte 0 says which environment variables come from the first arguments (bits
 * 0-4) and how many positionals are allowed (bits 5-7); the rest is argv, NUL-separated. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cli/opts.h"
#include "fuzz.h"

#define ARGS_MAX 100

static const char *const env_names[] = {"PYRT_FUZZ_PORT", "PYRT_FUZZ_TIMEOUT", "PYRT_FUZZ_MAX_BODY",
                                        "PYRT_FUZZ_CODE_DIR", "PYRT_FUZZ_PRELOAD"};
#define ENVS (sizeof(env_names) / sizeof(env_names[0]))

static bool from(const char *p, char **argv, int argc, const char *const *envs)
{
    for (int i = 0; i < argc; i++)
        if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
            return true;
    for (size_t i = 0; i < ENVS; i++)
        if (envs[i] && p >= envs[i] && p <= envs[i] + strlen(envs[i]))
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 1)
        return 0;
    unsigned env_mask = data[0] & 0x1f;
    int max_positional = data[0] >> 5;

    /* argv: the rest, split at NUL bytes, each piece its own allocation. */
    char *argv[ARGS_MAX];
    int argc = 0;
    const char *p = (const char *)data + 1, *end = (const char *)data + len;
    while (p <= end && argc < ARGS_MAX) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);
        argv[argc++] = strndup(p, n);
        p += n + 1;
    }
    /* The first arguments may become environment variables instead. */
    const char *envs[ENVS] = {NULL};
    int first = 0;
    for (size_t i = 0; i < ENVS; i++) {
        if ((env_mask & (1u << i)) && first < argc) {
            setenv(env_names[i], argv[first++], 1);
            envs[i] = getenv(env_names[i]);
        }
    }

    long port = -1;
    double timeout = NAN;
    size_t max_body = SIZE_MAX;
    const char *code_dir = NULL, *user = NULL;
    bool preload = false;
    opt_list_t list = {.count = 0};
    const opt_spec_t specs[] = {
        {"port", 'p', OPT_LONG, &port, env_names[0], 0, 65535, "PORT", NULL},
        {"timeout", 't', OPT_DOUBLE, &timeout, env_names[1], 0.001, 1e9, "S", NULL},
        {"max-body", 0, OPT_SIZE, &max_body, env_names[2], 1, 1024.0 * 1024 * 1024, "BYTES", NULL},
        {"code-dir", 'c', OPT_STRING, &code_dir, env_names[3], 0, 0, "DIR", NULL},
        {"preload", 0, OPT_FLAG, &preload, env_names[4], 0, 0, NULL, NULL},
        {"user", 'u', OPT_STRING, &user, NULL, 0, 0, "NAME", NULL},
        {"env", 'e', OPT_MULTI, &list, NULL, 0, 0, "K=V", NULL},
        {NULL, 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const char *positional[8];
    int positional_count = -1;
    bool help = false;
    char *err = malloc(PYRT_ERR_LEN);
    err[0] = '\0';

    int rc = opts_parse(specs, argc - first, argv + first, positional, max_positional,
                        &positional_count, &help, err);
    if (rc == 0) {
        FUZZ_CHECK(positional_count >= 0 && positional_count <= max_positional, "%d positionals",
                   positional_count);
        for (int i = 0; i < positional_count; i++)
            FUZZ_CHECK(from(positional[i], argv, argc, envs), "positional %d from nowhere", i);
        FUZZ_CHECK(port == -1 || (port >= 0 && port <= 65535), "port %ld", port);
        FUZZ_CHECK(isnan(timeout) || (isfinite(timeout) && timeout >= 0.001 && timeout <= 1e9),
                   "timeout %g", timeout);
        FUZZ_CHECK(max_body == SIZE_MAX || (max_body >= 1 && max_body <= (1u << 30)),
                   "max-body %zu", max_body);
        FUZZ_CHECK(!code_dir || from(code_dir, argv, argc, envs), "code-dir from nowhere");
        FUZZ_CHECK(!user || from(user, argv, argc, envs), "user from nowhere");
        FUZZ_CHECK(list.count >= 0 && list.count <= 64, "%d list items", list.count);
        for (int i = 0; i < list.count; i++)
            FUZZ_CHECK(from(list.items[i], argv, argc, envs), "list item %d from nowhere", i);
    } else {
        FUZZ_CHECK(rc == -1, "rc %d", rc);
        FUZZ_CHECK(memchr(err, '\0', PYRT_ERR_LEN) != NULL && err[0] != '\0',
                   "error message empty or unterminated");
    }
    free(err);
    for (size_t i = 0; i < ENVS; i++)
        unsetenv(env_names[i]);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    return 0;
}
