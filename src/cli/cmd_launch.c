/* cmd_launch.c -- `pyrt launch`: extract the archive safely, then serve it.
 *
 * Takes --archive FILE (default /tmp/code.tar.gz, env PYRT_ARCHIVE) and --extract-only
 * (extract, then exit: the image's start script times the two steps apart) out of the
 * arguments (opts_parse_known); everything else is `pyrt serve`'s, --code-dir (default
 * /usr/code) included, which is also where the archive goes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/contract.h"
#include "cli/opts.h"
#include "common/xalloc.h"
#include "tar/tar.h"

/* `value`, or the environment variable `env`, or `fallback` (an empty value counts as
 * none, as before launch used opts.c). */
static const char *given_or(const char *value, const char *env, const char *fallback)
{
    if (value != NULL)
        return value;
    const char *v = getenv(env);
    return v != NULL && *v != '\0' ? v : fallback;
}

/* "--NAME=VALUE", malloc'd: an option launch read and serve must see too. */
static char *option_arg(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 4;
    char *arg = xmalloc(n);
    snprintf(arg, n, "--%s=%s", name, value);
    return arg;
}

static int print_help(void)
{
    printf("usage: pyrt launch [--archive FILE] [--code-dir DIR] [--extract-only]\n"
           "                   [serve options]\n\n"
           "Extracts FILE (default /tmp/code.tar.gz; gzip or plain tar) into DIR\n"
           "(default /usr/code), refusing members that would land outside it, then\n"
           "serves DIR exactly as `pyrt serve` does (--extract-only: stops there).\n"
           "Serve options:\n\n");
    char help[] = "--help";
    char *args[] = {help, NULL};
    return cmd_serve(1, args);
}

int cmd_launch(int argc, char **argv)
{
    const char *archive = NULL, *code_dir = NULL, *contract_flag = NULL;
    bool extract_only = false;
    /* --code-dir and --contract are serve's too: read here (no env: PYRT_CODE_DIR and
     * PYRT_CONTRACT are read below, as serve reads them), passed on after. */
    const opt_spec_t specs[] = {
        {"archive", 0, OPT_STRING, &archive, NULL, 0, 0, "FILE", NULL},
        {"extract-only", 0, OPT_FLAG, &extract_only, NULL, 0, 0, NULL, NULL},
        {"code-dir", 0, OPT_STRING, &code_dir, NULL, 0, 0, "DIR", NULL},
        {"contract", 0, OPT_STRING, &contract_flag, NULL, 0, 0, "NAME", NULL},
        {0},
    };
    /* Room for serve's arguments: what launch does not take, and the two passed on. */
    char **rest = xcalloc((size_t)argc + 3, sizeof(char *));
    int nrest = 0;
    bool help = false;
    char err[PYRT_ERR_LEN];
    if (opts_parse_known(specs, argc, argv, rest, &nrest, &help, err) < 0) {
        fprintf(stderr, "pyrt launch: %s\n", err);
        free(rest);
        return 2;
    }
    if (help) {
        free(rest);
        return print_help();
    }
    archive = given_or(archive, "PYRT_ARCHIVE", "/tmp/code.tar.gz");
    char *contract_arg = contract_flag ? option_arg("contract", contract_flag) : NULL;
    char *code_dir_arg = option_arg("code-dir", given_or(code_dir, "PYRT_CODE_DIR", "/usr/code"));
    code_dir = code_dir_arg + strlen("--code-dir=");
    int rc = 1;

    /* The secret is checked before anything is extracted; `serve` takes it. */
    contract_t contract;
    if (!extract_only && (contract_resolve(given_or(contract_flag, "PYRT_CONTRACT", NULL),
                                           &contract, err, sizeof(err)) < 0 ||
                          contract_check_secret(contract, err, sizeof(err)) < 0)) {
        fprintf(stderr, "pyrt launch: %s\n", err);
        goto done;
    }
    if (tar_extract(archive, code_dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "pyrt launch: %s\n", err);
        goto done;
    }
    if (extract_only) {
        rc = 0;
        goto done;
    }
    if (contract_arg)
        rest[nrest++] = contract_arg;
    rest[nrest++] = code_dir_arg;
    rc = cmd_serve(nrest, rest);
done:
    free(contract_arg);
    free(code_dir_arg);
    free(rest);
    return rc;
}
